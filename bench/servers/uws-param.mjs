// uWebSockets.js: a route with a parameter, `/users/:id`, answering `user <id>`.
import { createRequire } from 'node:module'
import { announce } from './common.mjs'

const uWS = createRequire(import.meta.url)('@trufflesuite/uws-js-unofficial')

const app = uWS.App()
app.get('/users/:id', (res, req) => {
  const id = req.getParameter(0)
  res.cork(() => res.writeHeader('content-type', 'text/plain').end(`user ${id}`))
})
app.listen('127.0.0.1', 0, (token) => {
  if (!token) throw new Error('uWS could not listen')
  announce(uWS.us_socket_local_port(token))
})
