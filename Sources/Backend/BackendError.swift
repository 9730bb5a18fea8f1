import KoperProtocol

struct BackendError: Error, Sendable, CustomStringConvertible {
    let description: String
    init(_ d: String) { self.description = d }
}

/// One path component of the results tree (owner, dirname, chroot, result dir); the wire contract's rule.
func isSafeComponent(_ s: String) -> Bool { FieldRules.isPathComponent(s) }
