// fastify with @fastify/static: the directory given as the first argument under /files/.
import fastifyStatic from '@fastify/static'
import Fastify from 'fastify'
import { announce } from './common.mjs'

const app = Fastify({ logger: false })
await app.register(fastifyStatic, { root: process.argv[2], prefix: '/files/' })
await app.listen({ port: 0, host: '127.0.0.1' })
announce(app.server.address().port)
