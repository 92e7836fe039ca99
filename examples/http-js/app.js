// A wasi:http/proxy component in JavaScript (componentize-js, the StarlingMonkey engine):
// `GET /` greets, `POST /echo` answers the JSON it was sent inside an object of its own.
// Build: `sh build.sh`; serve: `lamina serve target/examples/js/http-js.wasm`.
addEventListener("fetch", (event) => event.respondWith(handle(event.request)));

async function handle(request) {
  const url = new URL(request.url);
  if (url.pathname === "/" && request.method === "GET") {
    return new Response("hello from JavaScript\n", { headers: { "content-type": "text/plain" } });
  }
  if (url.pathname === "/echo" && request.method === "POST") {
    const body = await request.json();
    return Response.json({ received: body, by: "javascript" });
  }
  return new Response("not found\n", { status: 404 });
}
