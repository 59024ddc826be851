// njs (Debian: libnginx-mod-http-js): the `model` field of an OpenAI-style
// JSON request body, so that nginx can route requests for one knowledge
// cache (MODEL@NAME) to the same frugal instance. The body is read in full
// before the upstream is chosen (proxy_request_buffering on, one buffer:
// client_body_in_single_buffer, client_body_buffer_size >= the body limit).
// Anything unreadable routes as a plain request ("").
function model(r) {
  try {
    const body = r.requestText;
    if (!body) return "";
    const name = JSON.parse(body).model;
    return typeof name === "string" ? name : "";
  } catch (e) {
    return "";
  }
}

export default { model };
