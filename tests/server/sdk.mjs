// tests/server/sdk.mjs — `dsv4 serve` driven by the official SDKs: openai (Chat Completions non-stream and
// stream, a tool-call round trip, Responses, Completions, errors) and @anthropic-ai/sdk (Messages non-stream,
// stream with thinking, tool_use / tool_result history). Run by tests/server/server.sh against a running server:
//   DSV4_URL=http://127.0.0.1:PORT DSV4_MODEL_NAME=nano node tests/server/sdk.mjs
// Prints one line per check ("ok ..." / "FAIL ...") and the final "N passed, N failed"; exits 1 on failure.
// With a model whose tokenizer has the DeepSeek-V4 special tokens and DSML-trained tool calls
// (DSV4_TOOL_MODEL=1, e.g. models/nano-chat) the tool round trip must produce a real tool call.
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

const base = process.env.DSV4_URL;
const model = process.env.DSV4_MODEL_NAME || 'nano';
const toolModel = process.env.DSV4_TOOL_MODEL === '1';
// each request may take DSV4_SDK_TIMEOUT_MS (default 60 s; server.sh gives 300 s to a server under qemu-user)
const timeout = +(process.env.DSV4_SDK_TIMEOUT_MS || 60000);
const openai = new OpenAI({ baseURL: base + '/v1', apiKey: 'unused', maxRetries: 0, timeout });
const anthropic = new Anthropic({ baseURL: base, apiKey: 'unused', maxRetries: 0, timeout });
let pass = 0, fail = 0;
const check = (name, cond, detail) => {
  if (cond) { pass++; console.log('ok   sdk: ' + name); }
  else { fail++; console.log('FAIL sdk: ' + name + (detail !== undefined ? ' -- ' + JSON.stringify(detail).slice(0, 400) : '')); }
};
const step = async (name, fn) => { try { await fn(); } catch (e) { fail++; console.log('FAIL sdk: ' + name + ' threw ' + e); } };
const greedy = { temperature: 0, thinking: { type: 'disabled' } };
// the tools models/nano-chat was trained with (tests/golden/nano_chat/cases.json)
const tools = [{ type: 'function', function: { name: 'calculator', description: 'Apply an arithmetic operation to two numbers.',
  parameters: { type: 'object', properties: { operation: { type: 'string', enum: ['add', 'subtract', 'multiply', 'divide'] },
    a: { type: 'number' }, b: { type: 'number' } }, required: ['operation', 'a', 'b'] } } },
  { type: 'function', function: { name: 'lookup_character', description: 'Look up a character of a Shakespeare play.',
    parameters: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] } } }];

await step('openai chat non-stream', async () => {
  const r = await openai.chat.completions.create({ model, messages: [{ role: 'user', content: 'ROMEO:' }], max_tokens: 8, ...greedy });
  const c = r.choices[0];
  check('openai chat: content is a non-empty string', typeof c.message.content === 'string' && c.message.content.length > 0, c);
  check('openai chat: finish_reason length', c.finish_reason === 'length', c.finish_reason);
  check('openai chat: usage with cached_tokens', r.usage.completion_tokens === 8 && typeof r.usage.prompt_tokens_details.cached_tokens === 'number', r.usage);
});

await step('openai chat stream', async () => {
  const s = await openai.chat.completions.create({ model, messages: [{ role: 'user', content: 'JULIET:' }], max_tokens: 8,
    stream: true, stream_options: { include_usage: true }, ...greedy });
  let text = '', fin = null, usage = null, n = 0;
  for await (const ch of s) {
    n++;
    if (ch.usage) usage = ch.usage;
    for (const c of ch.choices) { text += c.delta.content || ''; if (c.finish_reason) fin = c.finish_reason; }
  }
  check('openai stream: text and finish_reason', text.length > 0 && fin === 'length', { text, fin, n });
  check('openai stream: usage chunk', usage && usage.completion_tokens === 8, usage);
});

await step('openai stream reasoning', async () => {
  const s = await openai.chat.completions.create({ model, messages: [{ role: 'user', content: 'KING:' }], max_tokens: 6,
    stream: true, temperature: 0, thinking: { type: 'enabled' } });
  let reasoning = '', content = '';
  for await (const ch of s) for (const c of ch.choices) { reasoning += c.delta.reasoning_content || ''; content += c.delta.content || ''; }
  check('openai stream: thinking mode sends reasoning_content deltas, no DSML in content',
    reasoning.length > 0 && !content.includes('DSML'), { reasoning, content });
});

await step('openai prefix reuse', async () => {
  const sys = 'You are a player in a company of actors. '.repeat(40);
  const req = { model, messages: [{ role: 'system', content: sys }, { role: 'user', content: 'HAMLET:' }], max_tokens: 12, ...greedy };
  const a = await openai.chat.completions.create(req);
  const b = await openai.chat.completions.create(req);
  check('openai: second identical request reuses the prefix with the same output',
    b.usage.prompt_tokens_details.cached_tokens > 0 && a.choices[0].message.content === b.choices[0].message.content,
    { a: a.choices[0].message.content, b: b.choices[0].message.content, usage: b.usage });
});

await step('openai tool round trip', async () => {
  const messages = [{ role: 'system', content: 'You are a helpful assistant.' }, { role: 'user', content: 'What is 54 plus 94?' }];
  const r1 = await openai.chat.completions.create({ model, messages, tools, max_tokens: 160, temperature: 0 });
  const m1 = r1.choices[0].message;
  let calls = m1.tool_calls || [];
  if (toolModel) check('openai tools: the model calls the calculator (finish_reason tool_calls)',
    calls.length === 1 && calls[0].function.name === 'calculator' && r1.choices[0].finish_reason === 'tool_calls', r1.choices[0]);
  if (!calls.length) calls = [{ id: 'call_client1', type: 'function', function: { name: 'calculator', arguments: '{"operation": "add", "a": 54, "b": 94}' } }];
  check('openai tools: arguments are a JSON string', calls.every(c => typeof c.function.arguments === 'string' && JSON.parse(c.function.arguments)), calls);
  check('openai tools: no DSML in content', !(m1.content || '').includes('DSML'), m1.content);
  const history = [...messages, { role: 'assistant', content: m1.content || '', reasoning_content: m1.reasoning_content, tool_calls: calls },
    ...calls.map(c => ({ role: 'tool', tool_call_id: c.id, content: '5' }))];
  const r2 = await openai.chat.completions.create({ model, messages: history, tools, max_tokens: toolModel ? 160 : 16, temperature: 0 });
  check('openai tools: the answer after the tool result', r2.choices[0].message && r2.usage.prompt_tokens > r1.usage.prompt_tokens, r2.choices[0]);
  if (toolModel) {
    check('openai tools: an answer, no further call', !r2.choices[0].message.tool_calls && r2.choices[0].finish_reason === 'stop' &&
      (r2.choices[0].message.content || '').length > 0, r2.choices[0]);
    // the resent assistant turn renders the model's exact DSML bytes (registry by call id), so the whole first
    // conversation, generated tokens included, is reused
    check('openai tools: the resent history reuses the first turn (exact DSML replay)',
      r2.usage.prompt_tokens_details.cached_tokens >= r1.usage.prompt_tokens + r1.usage.completion_tokens - 1, { u1: r1.usage, u2: r2.usage });
  }
});

await step('openai responses', async () => {
  const r = await openai.responses.create({ model, input: 'ROMEO:', instructions: 'Be brief.', max_output_tokens: 6,
    reasoning: { effort: 'none' }, temperature: 0 });
  check('openai responses: output_text', typeof r.output_text === 'string' && r.output_text.length > 0, r);
  check('openai responses: usage', r.usage.output_tokens === 6 && typeof r.usage.input_tokens_details.cached_tokens === 'number', r.usage);
  const s = await openai.responses.create({ model, input: [{ role: 'user', content: 'ROMEO:' }], max_output_tokens: 4, stream: true, temperature: 0 });
  const types = [];
  for await (const ev of s) types.push(ev.type);
  check('openai responses stream: created ... reasoning deltas ... final event',
    types[0] === 'response.created' && types.includes('response.reasoning_text.delta') && types[types.length - 1] === 'response.incomplete', types);
  try {
    await openai.responses.create({ model, input: 'x', previous_response_id: 'resp_x' });
    check('openai responses: previous_response_id refused', false);
  } catch (e) { check('openai responses: previous_response_id refused', e.status === 400 && /previous_response_id/.test(e.message), e.message); }
});

await step('openai completions', async () => {
  const r = await openai.completions.create({ model, prompt: 'ROMEO:', max_tokens: 5, temperature: 0 });
  check('openai completions: text', typeof r.choices[0].text === 'string' && r.usage.completion_tokens === 5, r);
});

await step('openai errors', async () => {
  try {
    await openai.chat.completions.create({ model, messages: [{ role: 'user', content: 'x' }], n: 2 });
    check('openai: n = 2 refused', false);
  } catch (e) { check('openai: n = 2 -> BadRequestError with param n', e.status === 400 && e.param === 'n', { status: e.status, param: e.param }); }
  const models = await openai.models.list();
  check('openai: models.list', models.data.length === 1 && models.data[0].id === model, models.data);
});

await step('anthropic messages', async () => {
  const r = await anthropic.messages.create({ model, max_tokens: 6, system: 'Be brief.', messages: [{ role: 'user', content: 'ROMEO:' }], temperature: 0 });
  check('anthropic: text block and stop_reason', r.content[0].type === 'text' && r.content[0].text.length > 0 && r.stop_reason === 'max_tokens', r);
  check('anthropic: usage with cache read tokens', r.usage.output_tokens === 6 && typeof r.usage.cache_read_input_tokens === 'number', r.usage);
  const st = anthropic.messages.stream({ model, max_tokens: 6, thinking: { type: 'enabled', budget_tokens: 1024 },
    messages: [{ role: 'user', content: 'ROMEO:' }] });
  let thinking = '';
  st.on('thinking', (d) => { thinking += d; });
  const fm = await st.finalMessage();
  check('anthropic stream: thinking block accumulated', fm.content[0].type === 'thinking' && fm.content[0].thinking === thinking && thinking.length > 0, fm);
  const tr = await anthropic.messages.create({ model, max_tokens: 4, tools: [{ name: 'calculator', description: 'Calculate', input_schema: tools[0].function.parameters }],
    messages: [{ role: 'user', content: 'What is 2 + 3?' },
      { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'calculator', input: { operation: 'add', a: 2, b: 3 } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: '5' }] }] });
  check('anthropic: tool_use / tool_result history accepted', tr.type === 'message' && tr.usage.input_tokens > 0, tr);
  try {
    await anthropic.messages.create({ model, max_tokens: 4, messages: [{ role: 'wizard', content: 'x' }] });
    check('anthropic: bad role refused', false);
  } catch (e) { check('anthropic: bad role -> 400 invalid_request_error', e.status === 400 && e.error?.error?.type === 'invalid_request_error', e.error); }
});

console.log(`${pass} passed, ${fail} failed`);
process.exit(fail ? 1 : 0);
