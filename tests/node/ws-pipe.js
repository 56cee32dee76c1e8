// A WebSocket tunnel client (as wstunnel or websocat would be used): standard
// input and output carried in binary WebSocket messages to URL, through an
// HTTP proxy (CONNECT).  Used as ssh's ProxyCommand against websockify.
//   node ws-pipe.js ws://host:port/ http://proxy:port
const WebSocket = require("ws");
const { HttpsProxyAgent } = require("https-proxy-agent");

const [url, proxy] = process.argv.slice(2);
const ws = new WebSocket(url, ["binary"], { agent: new HttpsProxyAgent(proxy), rejectUnauthorized: false });
ws.on("open", () => {
  process.stdin.on("data", (d) => ws.send(d));
  process.stdin.on("end", () => ws.close());
});
ws.on("message", (d) => process.stdout.write(d));
ws.on("close", () => process.exit(0));
ws.on("error", (e) => { process.stderr.write(`ws-pipe: ${e.message}\n`); process.exit(1); });
