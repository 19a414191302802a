// A WebSocket peer built on the `ws` package (no code shared with Python's websockets):
//   node ws_peer.js server            echo server on 127.0.0.1:0 (/echo) and /push?count=M; prints "port N"
//   node ws_peer.js client URL [CA]   echo 3 messages on URL/echo, then read URL/push?count=5; prints JSON
'use strict';
const fs = require('fs');
const WebSocket = require('ws');

const [mode, url, ca] = process.argv.slice(2);
const nowNs = () => process.hrtime.bigint().toString();

function serve() {
  const server = new WebSocket.Server({ host: '127.0.0.1', port: 0, perMessageDeflate: false }, () => {
    console.log(`port ${server.address().port}`);
  });
  server.on('connection', (socket, request) => {
    const u = new URL(request.url, 'http://x');
    if (u.pathname === '/push') {
      const count = Number(u.searchParams.get('count') || 5);
      for (let seq = 1; seq <= count; seq++) {
        const t = nowNs();
        socket.send(`{"seq":${seq},"born_ns":${t},"sent_ns":${t},"data":"node"}`);
      }
      socket.close(1000, 'push complete');
    } else {
      socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
    }
  });
  process.on('SIGTERM', () => server.close());
}

function open(path) {
  const options = ca ? { ca: fs.readFileSync(ca), servername: 'localhost' } : {};
  return new WebSocket(url.replace(/\/$/, '') + path, options);
}

async function client() {
  const out = {};
  out.echo = await new Promise((resolve) => {
    const ws = open('/echo'), got = [];
    ws.on('open', () => ws.send(Buffer.from('one')));
    ws.on('message', (data) => {
      got.push(data.toString());
      if (got.length < 3) ws.send(Buffer.from(['one', 'two', 'three'][got.length])); else ws.close(1000);
    });
    ws.on('error', (e) => resolve({ error: String(e) }));
    ws.on('close', () => resolve(got));
  });
  out.push = await new Promise((resolve) => {
    const ws = open('/push?count=5&size=16&interval_ms=2'), seqs = [];
    ws.on('message', (data) => seqs.push(JSON.parse(data.toString()).seq));
    ws.on('error', (e) => resolve({ error: String(e) }));
    ws.on('close', (code) => resolve({ seqs, code }));
  });
  out.too_big = await new Promise((resolve) => {
    const ws = open('/echo');
    ws.on('open', () => ws.send(Buffer.alloc(2 << 20)));
    ws.on('error', () => {});
    ws.on('close', (code) => resolve({ code }));
  });
  console.log(JSON.stringify(out));
}

if (mode === 'server') serve(); else client().catch((e) => { console.error(e); process.exit(1); });
