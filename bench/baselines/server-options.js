// The command line both baseline servers take: [--port N] [--host H] (PORT in the
// environment also works; --port 0 picks a free port). An unknown option exits with status 2.
'use strict';

function parseServerOptions(argv, defaultPort) {
  const options = { port: Number(process.env.PORT || defaultPort), host: '127.0.0.1' };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2);
    const value = inline !== undefined ? inline : argv[++i];
    if (flag === '--port') options.port = Number(value);
    else if (flag === '--host') options.host = value;
    else {
      console.error(`unknown option: ${flag}`);
      process.exit(2);
    }
  }
  return options;
}

module.exports = { parseServerOptions };
