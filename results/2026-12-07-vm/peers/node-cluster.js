// Node.js cluster, the design this suite reproduces, as a peer to measure
// against: the same answer as the Rust worker (ARCHITECTURE.md), the same ready line.
//
//   node scripts/peers/node-cluster.js --sched rr|none [--listen 127.0.0.1:0] [--workers N]
//
// --sched rr:   the primary accepts and hands each connection to a worker
//               (cluster.SCHED_RR, Node's default on Linux) ~ handoff-socket
// --sched none: workers accept on a shared listening socket
//               (cluster.SCHED_NONE) ~ handoff-listener
// Prints {"event":"ready","mode":"node-rr",...} on stdout when every worker
// listens; SIGTERM/SIGINT stop the workers and exit 0.
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');
const os = require('node:os');

function parseArgs(argv) {
  const args = { sched: 'rr', listen: '127.0.0.1:8080', workers: os.availableParallelism() };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) usage(`${flag} needs a value`);
    if (flag === '--sched') args.sched = value;
    else if (flag === '--listen') args.listen = value;
    else if (flag === '--workers') args.workers = Number(value);
    else usage(`unknown flag ${flag}`);
  }
  if (!['rr', 'none'].includes(args.sched)) usage('--sched must be rr or none');
  if (!Number.isInteger(args.workers) || args.workers < 1) usage('--workers must be a positive integer');
  const at = args.listen.lastIndexOf(':');
  args.host = args.listen.slice(0, at);
  args.port = Number(args.listen.slice(at + 1));
  return args;
}

function usage(why) {
  process.stderr.write(`node-cluster: ${why}\n`);
  process.exit(2);
}

const MAX_WORK_US = 1000000;

function busyWork(us) {
  const end = process.hrtime.bigint() + BigInt(us) * 1000n;
  while (process.hrtime.bigint() < end) {}
}

function serve(args) {
  const body = `handled by child, pid is ${process.pid}\n`;
  const server = http.createServer((req, res) => {
    const q = req.url.indexOf('?');
    const match = q < 0 ? null : /(?:^|&)work_us=([^&]*)/.exec(req.url.slice(q + 1));
    let status = 200, text = body;
    if (match) {
      const us = Number(match[1]);
      if (Number.isInteger(us) && us >= 0 && us <= MAX_WORK_US && match[1] !== '') busyWork(us);
      else { status = 400; text = `work_us must be an integer from 0 to ${MAX_WORK_US}, got ${JSON.stringify(match[1])}\n`; }
    }
    res.writeHead(status, { 'content-type': 'text/plain', 'x-worker-pid': String(process.pid), 'content-length': Buffer.byteLength(text) });
    res.end(text);
  });
  // The same slowloris bound as the Rust workers' default --header-timeout.
  server.headersTimeout = 10000;
  server.listen(args.port, args.host);
  process.on('SIGINT', () => {}); // the primary coordinates the stop
}

function primary(args) {
  cluster.schedulingPolicy = args.sched === 'rr' ? cluster.SCHED_RR : cluster.SCHED_NONE;
  const workers = [];
  let address = null, ready = false, stopping = false;
  const fork = () => {
    const w = cluster.fork();
    w.on('listening', (addr) => {
      w.listening = true;
      address = addr;
      if (!ready && workers.length === args.workers && workers.every((x) => x.listening)) {
        ready = true;
        announce();
      }
    });
    return w;
  };
  const announce = () => {
    const line = { event: 'ready', mode: `node-${args.sched}`, listen: `${args.host}:${address.port}`,
      master_pid: process.pid, workers: workers.map((w) => ({ pid: w.process.pid, port: null })) };
    process.stdout.write(JSON.stringify(line) + '\n');
  };
  for (let i = 0; i < args.workers; i++) workers.push(fork());
  cluster.on('exit', (w) => {
    if (stopping) return;
    const i = workers.indexOf(w);
    const next = fork();
    workers[i] = next;
    next.on('listening', () => {
      process.stdout.write(JSON.stringify({ event: 'respawn', old_pid: w.process.pid, pid: next.process.pid, port: null }) + '\n');
    });
  });
  const stop = () => {
    stopping = true;
    for (const w of workers) w.process.kill('SIGTERM');
    setTimeout(() => process.exit(0), 5000).unref();
    cluster.on('exit', () => { if (workers.every((w) => w.isDead())) process.exit(0); });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

const args = parseArgs(process.argv.slice(2));
if (cluster.isPrimary) primary(args);
else serve(args);
