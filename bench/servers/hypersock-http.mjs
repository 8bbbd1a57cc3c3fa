// hypersock serve(): HTTP hello world.
import { serve } from '../../dist/index.js'
import { announce, HELLO } from './common.mjs'

const server = await serve({ port: 0, hostname: '127.0.0.1', fetch: () => HELLO })
announce(server.port)
