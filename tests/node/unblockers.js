// The two web unblockers the tests use, on 127.0.0.1:PORT:
//   /proxy/<url>  node-unblocker (the npm package "unblocker"), as deployed
//   /bare/        a TompHTTP bare server, the relay Ultraviolet's service worker talks to
const http = require("http");
const Unblocker = require("unblocker");
const { createBareServer } = require("@tomphttp/bare-server-node");

const port = Number(process.argv[2]);
const unblocker = new Unblocker({ prefix: "/proxy/" });
const bare = createBareServer("/bare/", { blockLocal: false });
const server = http.createServer((req, res) => {
  if (bare.shouldRoute(req)) return bare.routeRequest(req, res);
  unblocker(req, res, () => { res.writeHead(404); res.end("not found\n"); });
});
server.on("upgrade", (req, socket, head) => {
  if (bare.shouldRoute(req)) bare.routeUpgrade(req, socket, head);
  else socket.destroy();
});
server.listen(port, "127.0.0.1", () => console.log(`unblockers listening on ${port}`));
