// uWebSockets.js (npm @trufflesuite/uws-js-unofficial): HTTP hello world (GET) and JSON echo (POST).
import { createRequire } from 'node:module'
import { announce, HELLO } from './common.mjs'

const uWS = createRequire(import.meta.url)('@trufflesuite/uws-js-unofficial')

const app = uWS.App()
app.get('/*', (res) => {
  res.cork(() => res.writeHeader('content-type', 'text/plain').end(HELLO))
})
app.post('/*', (res) => {
  const chunks = []
  let aborted = false
  res.onAborted(() => {
    aborted = true
  })
  res.onData((chunk, last) => {
    chunks.push(Buffer.from(chunk.slice(0)))
    if (!last || aborted) return
    const body = JSON.stringify(JSON.parse(Buffer.concat(chunks).toString()))
    res.cork(() => res.writeHeader('content-type', 'application/json').end(body))
  })
})
app.listen('127.0.0.1', 0, (token) => {
  if (!token) throw new Error('uWS could not listen')
  announce(uWS.us_socket_local_port(token))
})
