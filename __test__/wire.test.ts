// The wire formats' shared fixtures: batches written by the Rust encoders (the golden tests in
// crates/node/src/wire/request.rs and ws_events.rs fail when their bytes change), read here by
// the TS decoders. Together they pin both sides to one layout. Round trips of arbitrary input are
// property tests on each side (proptest there, fast-check in property.test.ts).
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import type { Binding } from '../src-ts/native.js'
import { ServerRequest } from '../src-ts/server-request.js'
import type { ReplyHandle } from '../src-ts/server-response.js'
import { WsEvent } from '../src-ts/websocket-common.js'
import { decodeRequests } from '../src-ts/wire/request.js'
import { decodeWsEvents, type WsEventData } from '../src-ts/wire/ws-events.js'

function fixture(name: string): Buffer {
  return Buffer.from(readFileSync(new URL(`fixtures/wire/${name}`, import.meta.url), 'utf8').trim(), 'hex')
}

describe('the request batch written by encode_request', () => {
  const batch = fixture('request-batch.hex')
  const requests: ServerRequest[] = []
  decodeRequests(batch, (at) => {
    requests.push(new ServerRequest(batch, at, {} as Binding.BindingServer, {} as ReplyHandle, 'server.test', 'http'))
  })

  it('holds four records', () => {
    expect(requests.map((r) => r.id)).toEqual([1, 2, 0xffffffff, 4])
  })

  it('a GET over HTTP/1.1 from IPv4', () => {
    const r = requests[0] as ServerRequest
    expect([r.method, r.url, r.httpVersion, r.canUpgrade]).toEqual(['GET', 'http://example.test/a?b=c', '1.1', false])
    expect([...r.headers]).toEqual([
      ['accept', '*/*'],
      ['host', 'example.test'],
    ])
    expect([r.remoteAddress, r.remotePort]).toEqual(['127.0.0.1', 5000])
    expect(r.body).toBeNull()
  })

  it('a POST over HTTP/2 from IPv6 with a whole body and a repeated header', async () => {
    const r = requests[1] as ServerRequest
    expect([r.method, r.path, r.httpVersion]).toEqual(['POST', '/upload', '2'])
    expect(r.headers.get('x-a')).toBe('1, 2')
    expect([r.remoteAddress, r.remotePort]).toEqual(['2001:db8::1', 443])
    expect(await r.text()).toBe('hello')
  })

  it('a method outside the table, HTTP/1.0, a unix peer, an upgrade, a Latin-1 value', () => {
    const r = requests[2] as ServerRequest
    expect([r.method, r.path, r.httpVersion, r.canUpgrade]).toEqual(['PROPFIND', '/caf%C3%A9', '1.0', true])
    expect(r.headers.get('x-latin')).toBe('caf\xe9')
    expect([r.remoteAddress, r.remotePort]).toEqual(['', 0])
    expect([r.routeId, r.params]).toEqual([-1, {}])
  })

  it('a request that matched a handler route, with its decoded parameters', () => {
    const r = requests[3] as ServerRequest
    expect([r.method, r.path, r.routeId]).toEqual(['DELETE', '/users/7/files/a%20b', 3])
    expect({ ...r.params }).toEqual({ id: '7', '*': 'a b' })
    expect(r.headers.get('host')).toBe('example.test')
    expect([r.remoteAddress, r.remotePort]).toEqual(['127.0.0.1', 5001])
  })
})

describe('the WebSocket event batch written by WsEventQueue', () => {
  it('decodes kinds, ids above 2^32, text, binary, ping and close code', () => {
    const socket = { socket: true }
    const seen: Array<[number, number, unknown, WsEventData, number]> = []
    decodeWsEvents([fixture('ws-events.hex'), socket], (...event) => seen.push(event))
    expect(seen).toEqual([
      [WsEvent.Open, 1, socket, undefined, 0],
      [WsEvent.Message, 1, undefined, 'h\xe9llo', 0],
      [WsEvent.Message, 2 ** 40 + 7, undefined, Buffer.from([0, 1, 255]), 0],
      [WsEvent.Ping, 1, undefined, Buffer.from('p'), 0],
      [WsEvent.Close, 1, undefined, 'bye', 4000],
    ])
  })
})
