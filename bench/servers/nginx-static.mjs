// nginx (Debian's package) with one worker serving the directory given as the first argument
// under /files/, with its stock settings for static files (sendfile on, no open-file cache).
import { spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { announce } from './common.mjs'

const root = process.argv[2]
const port = await new Promise((resolve) => {
  const probe = createServer().listen(0, '127.0.0.1', () => {
    const { port } = probe.address()
    probe.close(() => resolve(port))
  })
})
const dir = mkdtempSync(join(tmpdir(), 'bench-nginx-'))
const conf = join(dir, 'nginx.conf')
writeFileSync(
  conf,
  `daemon off;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} error;
events { worker_connections 1024; }
http {
  include /etc/nginx/mime.types;
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path ${dir};
  proxy_temp_path ${dir};
  fastcgi_temp_path ${dir};
  uwsgi_temp_path ${dir};
  scgi_temp_path ${dir};
  server {
    listen 127.0.0.1:${port};
    location /files/ { alias ${root}/; }
  }
}
`,
)
const nginx = spawn('nginx', ['-c', conf, '-p', dir], { stdio: ['ignore', 'ignore', 'inherit'] })
nginx.on('exit', (code) => {
  console.error(`nginx exited with ${code}`)
  process.exit(1)
})
process.on('exit', () => nginx.kill('SIGKILL'))
// Wait until nginx accepts connections.
for (let i = 0; i < 200; i++) {
  const ok = await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.destroy()
      resolve(true)
    })
    socket.on('error', () => resolve(false))
  })
  if (ok) break
  await new Promise((r) => setTimeout(r, 25))
}
announce(port)
process.stdin.on('end', () => nginx.kill('SIGKILL'))
