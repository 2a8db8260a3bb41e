#include "server/server.h"
int srv_api_responses(const srv_request *q, srv_reply *r) { (void)q; srv_error e; srv_err(&e, 501, "server_error", 0, 0, "not yet"); srv_reply_error(r, SRV_API_OPENAI, &e); return -1; }
