// fastify: HTTP hello world (GET) and JSON echo (POST).
import Fastify from 'fastify'
import { announce, HELLO } from './common.mjs'

const app = Fastify({ logger: false })
app.get('/', async (_req, reply) => reply.type('text/plain').send(HELLO))
app.post('/', async (req) => req.body)
await app.listen({ port: 0, host: '127.0.0.1' })
announce(app.server.address().port)
