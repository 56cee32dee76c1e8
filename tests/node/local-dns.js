// Preloaded (node -r) by the tests: every name resolves to 127.0.0.1, so an
// unblocker "fetching a blocked site" reaches the test's local stand-in and
// nothing leaves the machine.
const dns = require("dns");
dns.lookup = (hostname, options, callback) => {
  if (typeof options === "function") { callback = options; options = {}; }
  if (options && options.all) return process.nextTick(callback, null, [{ address: "127.0.0.1", family: 4 }]);
  process.nextTick(callback, null, "127.0.0.1", 4);
};
