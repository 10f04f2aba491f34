// MCP round trip of a trivial tool call (p50, p99, in µs), side by side:
// - the official TypeScript client (@modelcontextprotocol/sdk) -> @modelcontextprotocol/server-everything
//   (`echo`), over stdio and over Streamable HTTP on loopback;
// - Miyabi's client -> server-everything, and Miyabi's client -> Miyabi's server (both transports),
//   from the Rust benchmark `cargo bench -p miyabi-mcp --bench roundtrip`, run from here.
// One JSON line per figure (on Linux also the CPU time per call of the TS client and of
// server-everything, `_cpu_client` / `_cpu_server`, from /proc/*/task/*/schedstat as the Rust
// figures), then the ratios TS pair / Miyabi pair over stdio (p50).
// Run: `node bench/mcp.mjs` (MIYABI_MCP_BENCH_N calls per figure, 2,000 by default;
// MIYABI_MCP_BENCH_RUST=0 skips the Rust figures; MIYABI_MCP_BENCH_ONLY=stdio the HTTP ones).
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const root = new URL('..', import.meta.url).pathname;
const everything = new URL('../node_modules/@modelcontextprotocol/server-everything/dist/index.js', import.meta.url).pathname;
const N = Number(process.env.MIYABI_MCP_BENCH_N ?? 2000);
const stdioOnly = process.env.MIYABI_MCP_BENCH_ONLY === 'stdio';
const figures = {};

function report(bench, value, unit = 'us') {
  figures[bench] = value;
  console.log(JSON.stringify({ bench, value: Number(value.toFixed(3)), unit }));
}

// Nanoseconds on CPU of every thread of process `pid` so far (Linux), or null.
function cpuNs(pid) {
  try {
    let total = 0;
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      total += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[0]);
    }
    return total;
  } catch {
    return null;
  }
}

async function measure(name, client, serverPid = null) {
  for (let i = 0; i < N / 10; i++) await client.callTool({ name: 'echo', arguments: { message: 'hi' } });
  const c0 = serverPid && cpuNs(process.pid);
  const s0 = serverPid && cpuNs(serverPid);
  const times = [];
  for (let i = 0; i < N; i++) {
    const t = process.hrtime.bigint();
    await client.callTool({ name: 'echo', arguments: { message: 'hi' } });
    times.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  const c1 = serverPid && cpuNs(process.pid);
  const s1 = serverPid && cpuNs(serverPid);
  if (c0 !== null && s0 !== null && c1 !== null && s1 !== null && serverPid) {
    report(`${name}_cpu_client`, (c1 - c0) / 1000 / N);
    report(`${name}_cpu_server`, (s1 - s0) / 1000 / N);
  }
  times.sort((a, b) => a - b);
  const at = (q) => times[Math.min(times.length - 1, Math.floor(times.length * q))];
  report(`${name}_p50`, at(0.5));
  report(`${name}_p99`, at(0.99));
}

async function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// TS client -> server-everything, stdio.
{
  const client = new Client({ name: 'bench', version: '1.0.0' });
  const transport = new StdioClientTransport({ command: process.execPath, args: [everything, 'stdio'], stderr: 'ignore' });
  await client.connect(transport);
  await measure('mcp_ts_to_everything_stdio', client, transport.pid);
  await client.close();
}

// TS client -> server-everything, Streamable HTTP.
if (!stdioOnly) {
  const port = await freePort();
  const child = spawn(process.execPath, [everything, 'streamableHttp'], {
    env: { ...process.env, PORT: String(port) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  await new Promise((resolve, reject) => {
    createInterface({ input: child.stderr }).on('line', (l) => l.includes('listening on port') && resolve());
    child.on('exit', (c) => reject(new Error(`server-everything exited with ${c}`)));
  });
  const client = new Client({ name: 'bench', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`)));
  await measure('mcp_ts_to_everything_http', client);
  await client.close();
  child.kill('SIGKILL');
}

// The Rust figures (Miyabi's client against Miyabi's server and server-everything).
if (process.env.MIYABI_MCP_BENCH_RUST !== '0') {
  const r = spawnSync('cargo', ['bench', '-q', '-p', 'miyabi-mcp', '--bench', 'roundtrip'], {
    cwd: root,
    env: { ...process.env, MIYABI_MCP_BENCH_N: String(N) },
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error('cargo bench -p miyabi-mcp --bench roundtrip failed');
  for (const line of r.stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    const { bench, value } = JSON.parse(line);
    report(bench, value);
  }
  const ts = figures.mcp_ts_to_everything_stdio_p50;
  for (const [suffix, ours] of [
    ['', figures.mcp_miyabi_to_miyabi_stdio_p50],
    ['_task_client', figures.mcp_miyabi_to_miyabi_stdio_task_client_p50],
    ['_ct_client', figures.mcp_miyabi_to_miyabi_stdio_ct_client_p50],
  ]) {
    if (ts && ours) report(`mcp_stdio_p50_ratio_ts_pair_over_miyabi_pair${suffix}`, ts / ours, 'x');
  }
}
