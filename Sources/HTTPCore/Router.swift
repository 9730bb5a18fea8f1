/// Matches `METHOD /literal/:param/...` patterns against a decoded path. A trailing slash on the request is ignored,
/// so `/api_3/build/1` and `/api_3/build/1/` match the same route (as upstream Copr accepts both).
public struct Router<Value: Sendable>: Sendable {
    @usableFromInline
    struct Route: Sendable {
        @usableFromInline let methods: [String]
        @usableFromInline let segments: [Segment]
        @usableFromInline let value: Value
    }

    @usableFromInline
    enum Segment: Sendable {
        case literal(String)
        case parameter(String)
        /// Matches the rest of the path (one or more segments), joined with "/".
        case rest(String)
    }

    @usableFromInline var routes: [Route] = []

    public init() {}

    /// `pattern` like `/api_3/build/:id`; `*name` as the last segment captures the remaining path.
    public mutating func add(_ methods: [String], _ pattern: String, _ value: Value) {
        let segments: [Segment] = pattern.split(separator: "/").map { s in
            if s.hasPrefix(":") { return .parameter(String(s.dropFirst())) }
            if s.hasPrefix("*") { return .rest(String(s.dropFirst())) }
            return .literal(String(s))
        }
        self.routes.append(Route(methods: methods, segments: segments, value: value))
    }

    public struct Match: Sendable {
        public let value: Value
        public let parameters: [String: String]

        @inlinable
        init(value: Value, parameters: [String: String]) {
            self.value = value
            self.parameters = parameters
        }
    }

    /// `pathSegments` are already percent-decoded. Returns nil when no route matches the path and method.
    @inlinable
    public func match(method: String, pathSegments: [String]) -> Match? {
        let segs = pathSegments.last == "" ? Array(pathSegments.dropLast()) : pathSegments
        routeLoop: for route in self.routes where route.methods.contains(method) {
            var params: [String: String] = [:]
            var i = 0
            for (k, seg) in route.segments.enumerated() {
                switch seg {
                case .literal(let l):
                    guard i < segs.count, segs[i] == l else { continue routeLoop }
                    i += 1
                case .parameter(let p):
                    guard i < segs.count, !segs[i].isEmpty else { continue routeLoop }
                    params[p] = segs[i]
                    i += 1
                case .rest(let p):
                    guard k == route.segments.count - 1, i < segs.count else { continue routeLoop }
                    params[p] = segs[i...].joined(separator: "/")
                    i = segs.count
                }
            }
            guard i == segs.count else { continue }
            return Match(value: route.value, parameters: params)
        }
        return nil
    }

    /// Splits a raw path into percent-decoded segments (leading "/" dropped; a trailing "/" gives a final "").
    /// Returns nil if an escape is malformed.
    public static func decodeSegments(_ rawPath: Substring) -> [String]? {
        var p = rawPath
        if p.hasPrefix("/") { p = p.dropFirst() }
        var out: [String] = []
        for part in p.split(separator: "/", omittingEmptySubsequences: false) {
            guard let d = URLEncoding.percentDecode(part) else { return nil }
            out.append(d)
        }
        return out
    }
}
