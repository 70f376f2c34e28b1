import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { messageOf, type Logger } from '@imgpipe/kit';
import type { AccessLog } from './access-log.js';
import { bodyBytes } from './body.js';
import { HttpError, UnavailableError } from './http-error.js';
import { LIMITS } from './limits.js';
import { JSON_CONTENT_TYPE } from './route-common.js';
import { matchRoute, requestPathname, type AppState, type Reply } from './routes.js';
import type { ServeMetrics } from './serve-metrics.js';
import { SECURITY_HEADERS } from './security-headers.js';

interface HttpApp {
  server: Server;
  /** Requests being handled now. */
  inFlight(): number;
  /**
   * Graceful stop: refuse new connections, answer requests already in flight, then close. Connections still
   * busy after `graceMs` are cut.
   */
  close(graceMs: number): Promise<void>;
}

interface HttpAppOptions {
  state: AppState;
  metrics: ServeMetrics;
  accessLog: AccessLog;
  log: Logger;
}

/** The node:http server: routing, error replies, per-request metrics and log lines, graceful close. */
export function createHttpApp({ state, metrics, accessLog, log }: HttpAppOptions): HttpApp {
  let inFlight = 0;
  let drained: (() => void) | undefined;

  let requestCount = 0;
  // Slow clients: headers and whole requests have time limits (checked more often than Node's default 30 s), an
  // idle kept-alive connection is closed, and a body that stalls is cut by readBodyText (LIMITS has the figures).
  const timeouts = {
    keepAliveTimeout: LIMITS.keepAliveTimeoutMs.default,
    headersTimeout: LIMITS.headersTimeoutMs.default,
    requestTimeout: LIMITS.requestTimeoutMs.default,
    connectionsCheckingInterval: LIMITS.connectionsCheckingIntervalMs.default,
  };
  const server = createServer(timeouts, (request, response) => {
    inFlight += 1;
    requestCount += 1;
    const requestId = `${process.pid.toString(36)}-${requestCount.toString(36)}`;
    response.setHeader('x-request-id', requestId);
    let clientGone = false;
    const started = performance.now();
    const pathname = requestPathname(request.url);
    const match = matchRoute(request.method ?? 'GET', pathname);
    const remote = request.socket.remoteAddress;
    let images = 0;
    let bytesOut = 0;
    let errorText: string | undefined;

    response.once('close', () => {
      state.limits.bodyBudget.release(request);
      // A response that never finished: the client hung up (nginx's 499), not the status set so far.
      if (!response.writableFinished) clientGone = true;
      const status = response.writableFinished ? response.statusCode : 499;
      metrics.observeRequest(match.label, status, (performance.now() - started) / 1000);
      accessLog({
        method: request.method ?? '-',
        path: request.url ?? '/',
        route: match.label,
        status,
        ms: performance.now() - started,
        bytesIn: bodyBytes(request),
        bytesOut,
        images,
        remote,
        ...(errorText ? { error: errorText } : {}),
      });
      inFlight -= 1;
      if (state.shuttingDown) {
        server.closeIdleConnections();
        if (inFlight === 0) drained?.();
      }
    });

    void respond(request, match).then((reply) => {
      images = reply.images ?? 0;
      reply.headers = { 'server-timing': `total;dur=${(performance.now() - started).toFixed(1)}`, ...reply.headers };
      try {
        bytesOut = send(request, response, reply);
      } catch (error) {
        // Never let one answer take the process down.
        log.error(`${request.method} ${pathname}: cannot send the answer: ${messageOf(error)}`);
        response.destroy();
      }
    });

    async function respond(req: IncomingMessage, m: typeof match): Promise<Reply> {
      try {
        if (!m.route) {
          if (m.allowed.length > 0) {
            throw new HttpError(405, `${req.method} is not allowed on ${pathname}; use ${m.allowed.join(' or ')}`, {
              headers: { allow: m.allowed.join(', ') },
            });
          }
          throw new HttpError(404, `no route ${req.method} ${pathname}; routes: POST / and /predict, /v2/..., GET /metrics`);
        }
        // A request that arrives once shutdown has begun (on a kept-alive connection) is refused; one that
        // arrived before is in flight and gets its answer.
        if (state.shuttingDown && m.route.method === 'POST') throw new UnavailableError('shutting down; retry on another instance');
        return await m.route.handle({ request: req, params: m.params }, state);
      } catch (error) {
        if (error instanceof HttpError) {
          errorText = error.message;
          return { status: error.status, headers: error.headers, body: error.toJSON() };
        }
        // The client went away mid-request (its socket closed, or reading the body failed because it did):
        // nothing to answer, and not a server error (logged as 499). req.destroyed is no sign of it: a request
        // stream is destroyed once its body has been read.
        const code = (error as NodeJS.ErrnoException)?.code;
        if (clientGone || req.socket.destroyed || ((code === 'ECONNRESET' || code === 'ECONNABORTED') && !req.complete)) {
          errorText = 'client closed the connection';
          return { status: 499, body: { error: errorText } };
        }
        errorText = messageOf(error);
        log.error(`${req.method} ${pathname}: request ${requestId}: ${errorText}${error instanceof Error && error.stack ? `\n${error.stack}` : ''}`);
        return { status: 500, body: { error: `internal error (request id ${requestId}); the server log has the details`, request_id: requestId } };
      }
    }
  });

  /** Write the reply; returns the body's size (0 when nothing could be sent). */
  function send(request: IncomingMessage, response: ServerResponse, reply: Reply): number {
    if (response.headersSent || response.destroyed) return 0;
    // A JSON or text body goes to the socket as the string itself: a Buffer of it would be one more copy, and
    // external memory, which makes V8 collect garbage more often.
    const body = Buffer.isBuffer(reply.body)
      ? reply.body
      : typeof reply.body === 'string' && reply.contentType
        ? reply.body
        : JSON.stringify(reply.body);
    const length = typeof body === 'string' ? Buffer.byteLength(body, 'utf8') : body.length;
    const headers: Record<string, string | number> = {
      'content-type': reply.contentType ?? JSON_CONTENT_TYPE,
      'content-length': length,
      ...SECURITY_HEADERS,
      ...reply.headers,
    };
    // While shutting down, or when the request body was not read (errors before reading it), close the
    // connection after this answer rather than read and discard what the client is still sending.
    if (state.shuttingDown || !request.complete) headers.connection = 'close';
    response.writeHead(reply.status, headers);
    response.end(request.method === 'HEAD' ? undefined : body);
    return request.method === 'HEAD' ? 0 : length;
  }

  // Expect: 100-continue: a body that will be refused (over --max-body) is answered at once, without inviting the
  // client to send it; any other gets its 100 Continue as Node would send it.
  server.on('checkContinue', (request: IncomingMessage, response: ServerResponse) => {
    if (!(Number(request.headers['content-length']) > state.maxBody)) response.writeContinue();
    server.emit('request', request, response);
  });

  // A client that sends garbage instead of HTTP gets a 400 and its socket closed; the server goes on.
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    if (socket.writable && error.code !== 'ECONNRESET') {
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    } else {
      socket.destroy();
    }
  });

  return {
    server,
    inFlight: () => inFlight,
    close(graceMs) {
      state.shuttingDown = true;
      return new Promise<void>((resolve) => {
        const cut = setTimeout(() => {
          log.warn(`${inFlight} requests still running after ${graceMs} ms; closing their connections`);
          server.closeAllConnections();
        }, graceMs);
        cut.unref();
        server.close(() => {
          clearTimeout(cut);
          resolve();
        });
        server.closeIdleConnections();
        drained = () => server.closeIdleConnections();
      });
    },
  };
}
