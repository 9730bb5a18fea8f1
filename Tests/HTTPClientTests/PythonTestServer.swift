import Foundation
import TestSupport

/// A throw-away HTTP server for the client tests: python3's `http.server` with a few extra endpoints, bound to
/// 127.0.0.1 port 0 (it reports the real port through a file), one thread per connection, stopped by pid.
///
/// Endpoints:
/// - `GET /static/NAME`: the file NAME from `root` (404 if missing).
/// - `ANY /echo`: the request body back; request facts in `X-Request-*` response headers; two `Set-Cookie` fields.
/// - `GET /slow?ms=N`: answers after N ms.
/// - `GET /large?n=N&cl=1|0`: N bytes, with `Content-Length` (cl=1) or close-delimited without it (cl=0).
/// - `GET /trickle?n=N&ms=M`: N single bytes, M ms apart, close-delimited.
/// - `GET /status?code=N`: status N with a short body.
/// - `GET /redirect`: 302 to `/static/hello.txt`.
struct PythonTestServer {
    let port: Int
    let root: String
    private let process: Process

    private static let script = #"""
        import http.server, os, signal, sys, time

        # Children spawned from a libdispatch thread inherit its blocked signal mask; make SIGTERM work again.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

        ROOT, PORT_FILE = sys.argv[1], sys.argv[2]

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def send(self, status, body, headers=(), length=True):
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                if length:
                    self.send_header("Content-Length", str(len(body)))
                else:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def handle_any(self):
                path, _, query = self.path.partition("?")
                q = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                try:
                    if path.startswith("/static/"):
                        try:
                            with open(os.path.join(ROOT, os.path.basename(path)), "rb") as f:
                                data = f.read()
                        except OSError:
                            return self.send(404, b"not found\n")
                        return self.send(200, data, [("Content-Type", "application/octet-stream")])
                    if path == "/echo":
                        return self.send(200, body, [
                            ("X-Request-Method", self.command),
                            ("X-Request-Path", self.path),
                            ("X-Request-Length", str(len(body))),
                            ("X-Request-Custom", self.headers.get("X-Custom", "none")),
                            ("X-Request-Expect", self.headers.get("Expect", "none")),
                            ("X-Request-Authorization", self.headers.get("Authorization", "none")),
                            ("Set-Cookie", "a=1"),
                            ("Set-Cookie", "b=2"),
                        ])
                    if path == "/slow":
                        time.sleep(int(q.get("ms", "1000")) / 1000.0)
                        return self.send(200, b"done")
                    if path == "/large":
                        n, cl = int(q["n"]), q.get("cl", "1") == "1"
                        self.send_response(200)
                        if cl:
                            self.send_header("Content-Length", str(n))
                        else:
                            self.send_header("Connection", "close")
                            self.close_connection = True
                        self.end_headers()
                        chunk = b"x" * 65536
                        while n > 0:
                            self.wfile.write(chunk[:min(n, len(chunk))])
                            n -= min(n, len(chunk))
                        return
                    if path == "/trickle":
                        self.send_response(200)
                        self.send_header("Connection", "close")
                        self.close_connection = True
                        self.end_headers()
                        for _ in range(int(q.get("n", "100"))):
                            self.wfile.write(b"."); self.wfile.flush()
                            time.sleep(int(q.get("ms", "50")) / 1000.0)
                        return
                    if path == "/status":
                        code = int(q.get("code", "200"))
                        return self.send(code, ("status %d\n" % code).encode())
                    if path == "/redirect":
                        return self.send(302, b"moved\n", [("Location", "/static/hello.txt")])
                    return self.send(404, b"no such endpoint\n")
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = handle_any

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            def handle_error(self, request, client_address):
                pass  # clients that give up early (timeouts, limits) are expected here

        server = Server(("127.0.0.1", 0), Handler)
        with open(PORT_FILE + ".tmp", "w") as f:
            f.write(str(server.server_address[1]))
        os.rename(PORT_FILE + ".tmp", PORT_FILE)
        server.serve_forever()
        """#

    struct StartFailure: Error, CustomStringConvertible {
        let description: String
    }

    /// Starts a server on a fresh temp directory, runs `body`, and always stops the server and removes the directory.
    static func with<T>(_ body: (PythonTestServer) async throws -> T) async throws -> T {
        let root = try makeTemporaryDirectory(prefix: "koper-httpclient")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let server = try await Self.start(root: root)
        do {
            let result = try await body(server)
            await server.stop()
            return result
        } catch {
            await server.stop()
            throw error
        }
    }

    private static func start(root: String) async throws -> PythonTestServer {
        let scriptPath = "\(root)/server.py"
        let portFile = "\(root)/port"
        try Self.script.write(toFile: scriptPath, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-u", scriptPath, root, portFile]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // Wait (bounded) for the port file.
        for _ in 0..<500 {
            if let text = try? String(contentsOfFile: portFile, encoding: .utf8), let port = Int(text) {
                return PythonTestServer(port: port, root: root, process: process)
            }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        process.terminate()
        throw StartFailure(description: "python test server did not start")
    }

    func url(_ path: String) -> String { "http://127.0.0.1:\(self.port)\(path)" }

    func stop() async {
        guard self.process.isRunning else { return }
        self.process.terminate()  // SIGTERM to this pid only
        for _ in 0..<250 where self.process.isRunning {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if self.process.isRunning {
            kill(self.process.processIdentifier, SIGKILL)
        }
    }
}
