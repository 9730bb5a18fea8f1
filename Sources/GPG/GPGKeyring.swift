internal import CGPGME
internal import Dispatch
public import Logging
internal import Synchronization

#if canImport(Glibc)
internal import Glibc
#elseif canImport(Musl)
internal import Musl
#elseif canImport(Darwin)
internal import Darwin
#endif

/// A key as listed in the keyring (its primary key).
public struct GPGKeyInfo: Sendable, Hashable {
    /// Upper-case hex fingerprint of the primary key (40 digits for v4 keys).
    public var fingerprint: String
    /// Upper-case hex long key ID: the last 16 digits of a v4 fingerprint.
    public var keyID: String
    public var userIDs: [String]
    /// Creation time, seconds since the Unix epoch.
    public var created: Int64
    /// Expiry of the primary key, seconds since the Unix epoch; nil if it never expires.
    public var expires: Int64?
    /// Some usable subkey (or the primary key) may sign.
    public var canSign: Bool
    /// The keyring holds the secret part.
    public var hasSecretKey: Bool
    public var isExpired: Bool
    public var isRevoked: Bool

    public init(
        fingerprint: String,
        keyID: String,
        userIDs: [String],
        created: Int64,
        expires: Int64?,
        canSign: Bool,
        hasSecretKey: Bool,
        isExpired: Bool = false,
        isRevoked: Bool = false
    ) {
        self.fingerprint = fingerprint
        self.keyID = keyID
        self.userIDs = userIDs
        self.created = created
        self.expires = expires
        self.canSign = canSign
        self.hasSecretKey = hasSecretKey
        self.isExpired = isExpired
        self.isRevoked = isRevoked
    }
}

/// A detached signature as gpg made it, with the hash algorithm gpg chose.
public struct GPGSignature: Sendable, Hashable {
    /// The binary signature packet (tag 2).
    public var bytes: [UInt8]
    /// The OpenPGP hash algorithm id gpg used (RFC 4880 §9.4): 8 = SHA-256, 9 = SHA-384, 10 = SHA-512,
    /// 11 = SHA-224, 2 = SHA-1. gpgme's `gpgme_hash_algo_t` uses the same numbers.
    public var hashAlgorithm: Int

    public init(bytes: [UInt8], hashAlgorithm: Int) {
        self.bytes = bytes
        self.hashAlgorithm = hashAlgorithm
    }
}

/// An OpenPGP keyring in one GnuPG home directory, driven through gpgme. This module is the only importer of
/// `CGPGME`; Keygen uses it to create project keys and to export them (it signs with libcrypto itself).
///
/// - One `gpgme_ctx_t`, owned by the keyring and used only on its serial DispatchQueue. Every gpgme call is
///   blocking (gpgme runs `gpg`, which talks to a `gpg-agent` it starts for the home directory), so async callers
///   wait on a continuation and the Swift cooperative pool never blocks.
/// - Pinentry is in loopback mode with no passphrase callback, so an operation that would need a passphrase fails
///   instead of waiting for one; keys are made without a passphrase (`GPGME_CREATE_NOPASSWD`).
/// - Every operation is bounded by `operationTimeout`: a watchdog cancels it (`gpgme_cancel_async`, gpgme's
///   documented cross-thread call), kills the gpg process gpgme started for this home (a blocked gpg would never
///   let gpgme notice the cancel; `EngineProcesses`), and the context is replaced.
/// - Offline: keylisting never goes to the network.
/// - The gpg-agent keeps running after the keyring is gone; stop it with `gpgconf --homedir DIR --kill gpg-agent`.
///
/// `@unchecked Sendable` invariant: `context` is read and written only on `queue` (checked with
/// `dispatchPrecondition`) and in `deinit`. The watchdog's copy of the handle lives in a `Mutex` and is used only for
/// `gpgme_cancel_async` while the queue is inside that operation.
public final class GPGKeyring: @unchecked Sendable {
    public let homeDirectory: String
    private let engineExecutable: String?
    /// gpgme's version, e.g. `"1.18.0"`.
    public let gpgmeVersion: String
    private let operationTimeout: Duration
    private let logger: Logger
    private let queue: DispatchQueue
    private var context: OpaquePointer?
    private let watchdog = Mutex(Watchdog())

    private struct Watchdog {
        var generation: UInt64 = 0
        var running: UInt64?
        var fired: UInt64?
        var context: ContextForCancel?
    }

    /// The context handle as the watchdog holds it: only ever passed to `gpgme_cancel_async`, which gpgme documents
    /// as callable from another thread while an operation runs.
    private struct ContextForCancel: @unchecked Sendable {
        let handle: OpaquePointer
    }

    /// `gpgme_check_version`, once per process, before any other gpgme call.
    private static let version: String? = gpgme_check_version(nil).map { String(cString: $0) }

    /// Opens the keyring in `homeDirectory` (created with mode 0700 if missing).
    ///
    /// Blocks briefly: gpgme runs `gpg --version` once per process to check the engine. Call it at startup.
    ///
    /// - Parameter engineExecutable: the gpg program to run (absolute path); nil uses gpgme's default.
    public init(
        homeDirectory: String,
        operationTimeout: Duration = .seconds(300),
        engineExecutable: String? = nil,
        logger: Logger
    ) throws {
        if let engineExecutable, !engineExecutable.hasPrefix("/") || engineExecutable.utf8.contains(0) {
            throw GPGError(code: .invalidArgument, message: "the gpg program must be an absolute path")
        }
        guard homeDirectory.hasPrefix("/"), !homeDirectory.utf8.contains(0) else {
            throw GPGError(code: .invalidArgument, message: "home directory must be an absolute path")
        }
        guard operationTimeout > .zero else {
            throw GPGError(code: .invalidArgument, message: "operation timeout must be positive")
        }
        guard let version = Self.version else {
            throw GPGError(code: .engineUnavailable, message: "gpgme_check_version failed")
        }
        let engine = gpgme_engine_check_version(GPGME_PROTOCOL_OpenPGP)
        guard engine == 0 else {
            throw GPGError(
                code: .engineUnavailable,
                message: "no usable OpenPGP engine: \(gpgMessage(engine))",
                gpgErrorCode: gpgme_err_code(engine).rawValue
            )
        }
        if mkdir(homeDirectory, 0o700) != 0 && errno != EEXIST {
            let code = errno
            throw GPGError(
                code: .invalidArgument,
                message: "cannot create home directory: \(String(cString: strerror(code)))"
            )
        }
        self.homeDirectory = homeDirectory
        self.engineExecutable = engineExecutable
        self.gpgmeVersion = version
        self.operationTimeout = operationTimeout
        self.logger = logger
        self.queue = DispatchQueue(label: "koper.gpg.keyring")
        // (An untyped closure: a typed-throws one here crashes the 6.3.1 compiler's LifetimeDependenceDiagnostics.)
        let setUp: Result<Void, GPGError> = self.queue.sync {
            Result { () throws(GPGError) in _ = try self.contextOnQueue() }
        }
        try setUp.get()
    }

    deinit {
        if let context {
            gpgme_release(context)
        }
    }

    // MARK: Operations

    /// Creates a new primary key that can sign and certify, without a passphrase, and returns its fingerprint.
    ///
    /// `algorithm` is gpg's name (`rsa4096`, `rsa2048`, `ed25519`, `default`, …); `expires` is counted from now,
    /// nil for a key that never expires. The corresponding C function is `gpgme_op_createkey`.
    public func generateKey(userID: String, algorithm: String = "rsa4096", expires: Duration?) async throws -> String {
        guard !userID.isEmpty, !userID.utf8.contains(where: { $0 < 0x20 || $0 == 0x7f }) else {
            throw GPGError(code: .invalidArgument, message: "user ID is empty or contains control characters")
        }
        guard !algorithm.isEmpty, algorithm.utf8.allSatisfy(isAlgorithmByte) else {
            throw GPGError(code: .invalidArgument, message: "algorithm name is not valid")
        }
        var flags = UInt32(GPGME_CREATE_SIGN) | UInt32(GPGME_CREATE_NOPASSWD)
        var seconds: UInt = 0
        if let expires {
            seconds = try expirySeconds(expires)
        } else {
            flags |= UInt32(GPGME_CREATE_NOEXPIRE)
        }
        let fingerprint = try await self.run("createkey") { [flags, seconds] (ctx) throws(GPGError) -> String in
            try check(gpgme_op_createkey(ctx, userID, algorithm, 0, seconds, nil, flags), "creating a key")
            guard let result = gpgme_op_genkey_result(ctx), let fpr = result.pointee.fpr else {
                throw GPGError(code: .operationFailed, message: "gpg created no key")
            }
            return String(cString: fpr).uppercased()
        }
        self.logger.info(
            "GPG key created",
            metadata: ["gpg.fingerprint": "\(fingerprint)", "gpg.algorithm": "\(algorithm)"]
        )
        return fingerprint
    }

    /// The public key (transferable public key: key, user IDs, self-signatures), ASCII-armored or binary.
    /// The corresponding C function is `gpgme_op_export`.
    public func exportPublicKey(fingerprint: String, armored: Bool) async throws -> [UInt8] {
        let fpr = try normalizedFingerprint(fingerprint)
        return try await self.run("export") { (ctx) throws(GPGError) -> [UInt8] in
            gpgme_set_armor(ctx, armored ? 1 : 0)
            let bytes = try withOutputData(wipe: false) { (data) throws(GPGError) in
                try check(gpgme_op_export(ctx, fpr, 0, data), "exporting a public key")
            }
            guard !bytes.isEmpty else {
                throw GPGError(code: .keyNotFound, message: "no public key \(fpr)")
            }
            return bytes
        }
    }

    /// The binary transferable secret key (secret-key packet first, tag 5), unprotected for keys made without a
    /// passphrase. Treat the result as a secret: the gpgme copy is wiped, the returned array is the caller's.
    /// The corresponding C function is `gpgme_op_export` with `GPGME_EXPORT_MODE_SECRET`.
    public func exportSecretKey(fingerprint: String) async throws -> [UInt8] {
        let fpr = try normalizedFingerprint(fingerprint)
        return try await self.run("export-secret") { (ctx) throws(GPGError) -> [UInt8] in
            gpgme_set_armor(ctx, 0)
            let bytes = try withOutputData(wipe: true) { (data) throws(GPGError) in
                try check(gpgme_op_export(ctx, fpr, UInt32(GPGME_EXPORT_MODE_SECRET), data), "exporting a secret key")
            }
            guard !bytes.isEmpty else {
                throw GPGError(code: .keyNotFound, message: "no secret key \(fpr)")
            }
            return bytes
        }
    }

    /// All keys in the keyring. The corresponding C functions are `gpgme_op_keylist_start`/`_next`/`_end`.
    public func listKeys() async throws -> [GPGKeyInfo] {
        try await self.run("keylist") { (ctx) throws(GPGError) -> [GPGKeyInfo] in
            try check(gpgme_op_keylist_start(ctx, nil, 0), "listing keys")
            defer { gpgme_op_keylist_end(ctx) }
            var keys: [GPGKeyInfo] = []
            while true {
                var key: gpgme_key_t?
                let err = gpgme_op_keylist_next(ctx, &key)
                if gpgme_err_code(err) == GPG_ERR_EOF { break }
                try check(err, "listing keys")
                guard let key else { break }
                defer { gpgme_key_unref(key) }
                if let info = keyInfo(key) { keys.append(info) }
            }
            return keys
        }
    }

    /// The key with this fingerprint, or nil. The corresponding C function is `gpgme_get_key`.
    public func key(fingerprint: String) async throws -> GPGKeyInfo? {
        let fpr = try normalizedFingerprint(fingerprint)
        return try await self.run("getkey") { (ctx) throws(GPGError) -> GPGKeyInfo? in
            guard let key = try lookUpKey(ctx, fpr, secret: false) else { return nil }
            defer { gpgme_key_unref(key) }
            return keyInfo(key)
        }
    }

    /// Moves the expiry of the key (primary key and any subkeys) `by` later: from its current expiry, or from now
    /// if it has already expired. A key that never expires is left alone.
    /// The corresponding C function is `gpgme_op_setexpire` (`gpg --quick-set-expire`).
    public func extendExpiry(fingerprint: String, by duration: Duration) async throws {
        let fpr = try normalizedFingerprint(fingerprint)
        let extra = try expirySeconds(duration)
        let newExpiry = try await self.run("setexpire") { (ctx) throws(GPGError) -> Int64? in
            guard let key = try lookUpKey(ctx, fpr, secret: true) else {
                throw GPGError(code: .keyNotFound, message: "no secret key \(fpr)")
            }
            defer { gpgme_key_unref(key) }
            guard let primary = key.pointee.subkeys, primary.pointee.expires > 0 else {
                return nil
            }
            let now = Int64(time(nil))
            let target = max(Int64(primary.pointee.expires), now) + Int64(extra)
            let seconds = UInt(max(1, target - now))
            try check(gpgme_op_setexpire(ctx, key, seconds, nil, 0), "setting the expiry")
            if primary.pointee.next != nil {
                try check(gpgme_op_setexpire(ctx, key, seconds, "*", 0), "setting the expiry of subkeys")
            }
            return target
        }
        self.logger.info(
            "GPG key expiry extended",
            metadata: ["gpg.fingerprint": "\(fpr)", "gpg.expires": "\(newExpiry.map { "\($0)" } ?? "never")"]
        )
    }

    /// A detached binary signature over `data` by the key's signing key (gpg chooses the hash).
    /// The reference path: Keygen signs in-process with libcrypto.
    /// The corresponding C function is `gpgme_op_sign` with `GPGME_SIG_MODE_DETACH`.
    public func sign(_ data: [UInt8], fingerprint: String) async throws -> [UInt8] {
        try await self.signDetached(data, fingerprint: fingerprint).bytes
    }

    /// Like `sign(_:fingerprint:)`, and also reports the hash algorithm gpg chose (from `gpgme_op_sign_result`).
    /// gpgme has no per-call hash option: gpg takes it from its options (`personal-digest-preferences` in the home
    /// directory's `gpg.conf`) or its built-in default.
    public func signDetached(_ data: [UInt8], fingerprint: String) async throws -> GPGSignature {
        let fpr = try normalizedFingerprint(fingerprint)
        return try await self.run("sign") { (ctx) throws(GPGError) -> GPGSignature in
            try signOnQueue(ctx, data, fpr)
        }
    }

    /// `signDetached(_:fingerprint:)` for callers on their own threads: blocks the calling thread until gpg is done
    /// (bounded by `operationTimeout`, and by any operation queued before it). Never call it from a Swift task on
    /// the cooperative pool, nor from inside another keyring operation.
    public func signDetachedSynchronously(_ data: [UInt8], fingerprint: String) throws -> GPGSignature {
        let fpr = try normalizedFingerprint(fingerprint)
        dispatchPrecondition(condition: .notOnQueue(self.queue))
        // (An untyped closure, as in init: a typed-throws one inside queue.sync crashes the 6.3.1 compiler.)
        let result: Result<GPGSignature, GPGError> = self.queue.sync {
            Result { () throws(GPGError) -> GPGSignature in
                try self.perform("sign") { (ctx) throws(GPGError) -> GPGSignature in try signOnQueue(ctx, data, fpr) }
            }
        }
        return try result.get()
    }

    // MARK: User IDs

    /// Adds a user ID to the key, self-signed (`gpg --quick-add-uid`). Adding one the key already has is an error.
    /// The corresponding C function is `gpgme_op_adduid`.
    public func addUserID(fingerprint: String, userID: String) async throws {
        let fpr = try normalizedFingerprint(fingerprint)
        try validateUserID(userID)
        try await self.run("adduid") { (ctx) throws(GPGError) -> Void in
            guard let key = try lookUpKey(ctx, fpr, secret: true) else {
                throw GPGError(code: .keyNotFound, message: "no secret key \(fpr)")
            }
            defer { gpgme_key_unref(key) }
            try check(gpgme_op_adduid(ctx, key, userID, 0), "adding a user ID")
        }
        self.logger.info("GPG user ID added", metadata: ["gpg.fingerprint": "\(fpr)"])
    }

    /// Removes a user ID from the key in this keyring (`gpg --edit-key FPR uid N deluid save`): the user ID packet
    /// and its signatures are gone, as if it had never been added. Unlike a revocation this is local only, so use it
    /// only for user IDs that were never published. Refuses to remove the key's last user ID.
    /// The corresponding C function is `gpgme_op_interact`.
    public func deleteUserID(fingerprint: String, userID: String) async throws {
        let fpr = try normalizedFingerprint(fingerprint)
        try validateUserID(userID)
        try await self.run("deluid") { (ctx) throws(GPGError) -> Void in
            guard let key = try lookUpKey(ctx, fpr, secret: true) else {
                throw GPGError(code: .keyNotFound, message: "no secret key \(fpr)")
            }
            defer { gpgme_key_unref(key) }
            let userIDs = keyInfo(key)?.userIDs ?? []
            guard let position = userIDs.firstIndex(of: userID) else {
                throw GPGError(code: .invalidArgument, message: "the key has no such user ID")
            }
            guard userIDs.count > 1 else {
                throw GPGError(code: .invalidArgument, message: "cannot delete the key's only user ID")
            }
            let session = DeleteUserIDSession(number: position + 1)
            let opaque = Unmanaged.passRetained(session)
            defer { opaque.release() }
            let err = try withOutputDataResult { (out) -> gpgme_error_t in
                gpgme_op_interact(ctx, key, 0, deleteUserIDCallback, opaque.toOpaque(), out)
            }
            if let unexpected = session.unexpected {
                throw GPGError(code: .operationFailed, message: "deleting a user ID: gpg asked \(unexpected)")
            }
            try check(err, "deleting a user ID")
            guard session.saved else {
                throw GPGError(code: .operationFailed, message: "deleting a user ID: gpg ended the session early")
            }
        }
        self.logger.info("GPG user ID deleted", metadata: ["gpg.fingerprint": "\(fpr)"])
    }

    // MARK: Queue and context

    /// Runs `body` on the keyring's queue with the context, bounded by `operationTimeout`.
    private func run<T: Sendable>(
        _ operation: String,
        _ body: @escaping @Sendable (OpaquePointer) throws(GPGError) -> T
    ) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            self.queue.async {
                continuation.resume(with: Result { () throws(GPGError) -> T in try self.perform(operation, body) })
            }
        }
    }

    private func perform<T>(_ operation: String, _ body: (OpaquePointer) throws(GPGError) -> T) throws(GPGError) -> T {
        dispatchPrecondition(condition: .onQueue(self.queue))
        let ctx = try self.contextOnQueue()
        let generation = self.watchdog.withLock { state -> UInt64 in
            state.generation &+= 1
            state.running = state.generation
            state.context = ContextForCancel(handle: ctx)
            return state.generation
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + self.operationTimeout.dispatchInterval) { [weak self] in
            self?.fireWatchdog(generation)
        }
        let result = Result { () throws(GPGError) -> T in try body(ctx) }
        let fired = self.watchdog.withLock { state -> Bool in
            state.running = nil
            state.context = nil
            return state.fired == generation
        }
        if fired {
            // The context may carry a pending cancel flag: never reuse it.
            gpgme_release(ctx)
            self.context = nil
            self.logger.warning("GPG operation timed out", metadata: ["gpg.operation": "\(operation)"])
            if case .failure = result {
                throw GPGError(code: .timeout, message: "\(operation) did not finish within \(self.operationTimeout)")
            }
        }
        return try result.get()
    }

    private func fireWatchdog(_ generation: UInt64) {
        self.watchdog.withLock { state in
            guard state.running == generation, let ctx = state.context else { return }
            state.fired = generation
            _ = gpgme_cancel_async(ctx.handle)
        }
        // A blocked gpg never wakes gpgme's loop up to see the cancel: end it (its closed pipes end the operation).
        let killed = EngineProcesses.kill(homeDirectory: self.homeDirectory)
        self.logger.debug("GPG engine processes killed", metadata: ["gpg.processes": "\(killed)"])
    }

    /// The context, created on first use (and again after a timeout): OpenPGP, this home directory, loopback pinentry,
    /// offline, local keylisting with secret-key flags.
    private func contextOnQueue() throws(GPGError) -> OpaquePointer {
        dispatchPrecondition(condition: .onQueue(self.queue))
        if let context { return context }
        var created: gpgme_ctx_t?
        try check(gpgme_new(&created), "creating a gpgme context", code: .engineUnavailable)
        guard let ctx = created else {
            throw GPGError(code: .engineUnavailable, message: "gpgme_new returned no context")
        }
        do throws(GPGError) {
            try check(gpgme_set_protocol(ctx, GPGME_PROTOCOL_OpenPGP), "selecting OpenPGP", code: .engineUnavailable)
            try check(
                gpgme_ctx_set_engine_info(ctx, GPGME_PROTOCOL_OpenPGP, self.engineExecutable, self.homeDirectory),
                "setting the home directory",
                code: .engineUnavailable
            )
            try check(
                gpgme_set_pinentry_mode(ctx, GPGME_PINENTRY_MODE_LOOPBACK),
                "setting loopback pinentry",
                code: .engineUnavailable
            )
            try check(
                gpgme_set_keylist_mode(ctx, UInt32(GPGME_KEYLIST_MODE_LOCAL) | UInt32(GPGME_KEYLIST_MODE_WITH_SECRET)),
                "setting the keylist mode",
                code: .engineUnavailable
            )
            gpgme_set_offline(ctx, 1)
        } catch {
            gpgme_release(ctx)
            throw error
        }
        self.context = ctx
        return ctx
    }
}

// MARK: Helpers (called on the keyring's queue)

private func gpgMessage(_ err: gpgme_error_t) -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    _ = gpgme_strerror_r(err, &buffer, buffer.count)
    let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return "\(text) <\(String(cString: gpgme_strsource(err)))>"
}

private func check(_ err: gpgme_error_t, _ what: String, code: GPGError.Code = .operationFailed) throws(GPGError) {
    guard err != 0 else { return }
    let errCode = gpgme_err_code(err)
    let kind: GPGError.Code
    switch errCode {
    case GPG_ERR_NO_SECKEY, GPG_ERR_NO_PUBKEY, GPG_ERR_UNUSABLE_SECKEY, GPG_ERR_UNUSABLE_PUBKEY:
        kind = .keyNotFound
    case GPG_ERR_INV_VALUE, GPG_ERR_INV_ARG, GPG_ERR_INV_NAME, GPG_ERR_UNKNOWN_ALGORITHM, GPG_ERR_PUBKEY_ALGO:
        kind = code == .operationFailed ? .invalidArgument : code
    default:
        kind = code
    }
    throw GPGError(code: kind, message: "\(what) failed: \(gpgMessage(err))", gpgErrorCode: errCode.rawValue)
}

/// Upper-case hex, 40 (v4) or 64 (v5) digits. Never empty: an empty pattern would select every key.
private func normalizedFingerprint(_ fingerprint: String) throws(GPGError) -> String {
    let upper = fingerprint.uppercased()
    let isHex = upper.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 70) }
    guard isHex, upper.utf8.count == 40 || upper.utf8.count == 64 else {
        throw GPGError(code: .invalidArgument, message: "fingerprint must be 40 or 64 hex digits")
    }
    return upper
}

private func isAlgorithmByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
        UInt8(ascii: "0")...UInt8(ascii: "9"),
        UInt8(ascii: "/"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"):
        return true
    default:
        return false
    }
}

private func expirySeconds(_ duration: Duration) throws(GPGError) -> UInt {
    let seconds = duration.components.seconds
    guard seconds >= 1, seconds <= 200 * 365 * 86_400 else {
        throw GPGError(code: .invalidArgument, message: "expiry must be between 1 second and 200 years")
    }
    return UInt(seconds)
}

/// `gpgme_get_key`; nil when there is no such key.
private func lookUpKey(_ ctx: OpaquePointer, _ fingerprint: String, secret: Bool) throws(GPGError) -> gpgme_key_t? {
    var key: gpgme_key_t?
    let err = gpgme_get_key(ctx, fingerprint, &key, secret ? 1 : 0)
    if gpgme_err_code(err) == GPG_ERR_EOF { return nil }
    try check(err, "looking up key \(fingerprint)")
    return key
}

private func keyInfo(_ key: gpgme_key_t) -> GPGKeyInfo? {
    guard let primary = key.pointee.subkeys, let fpr = primary.pointee.fpr else { return nil }
    var userIDs: [String] = []
    var uid = key.pointee.uids
    while let current = uid {
        if let text = current.pointee.uid { userIDs.append(String(cString: text)) }
        uid = current.pointee.next
    }
    let fingerprint = String(cString: fpr).uppercased()
    let keyID = primary.pointee.keyid.map { String(cString: $0).uppercased() } ?? String(fingerprint.suffix(16))
    return GPGKeyInfo(
        fingerprint: fingerprint,
        keyID: keyID,
        userIDs: userIDs,
        created: Int64(primary.pointee.timestamp),
        expires: primary.pointee.expires > 0 ? Int64(primary.pointee.expires) : nil,
        canSign: key.pointee.can_sign != 0,
        hasSecretKey: key.pointee.secret != 0,
        isExpired: key.pointee.expired != 0,
        isRevoked: key.pointee.revoked != 0
    )
}

/// Runs `body` with a fresh memory data object and returns what was written to it. With `wipe`, gpgme's buffer is
/// zeroed before it is freed.
private func withOutputData(wipe: Bool, _ body: (gpgme_data_t?) throws(GPGError) -> Void) throws(GPGError) -> [UInt8] {
    var data: gpgme_data_t?
    try check(gpgme_data_new(&data), "creating a data object")
    do throws(GPGError) {
        try body(data)
    } catch {
        // Release without reading; wipe what may have been written.
        var length = 0
        if let memory = gpgme_data_release_and_get_mem(data, &length) {
            if wipe { memset(memory, 0, length) }
            gpgme_free(memory)
        }
        throw error
    }
    var length = 0
    guard let memory = gpgme_data_release_and_get_mem(data, &length) else { return [] }
    defer {
        if wipe { memset(memory, 0, length) }
        gpgme_free(memory)
    }
    return [UInt8](UnsafeRawBufferPointer(start: memory, count: length))
}

extension Duration {
    fileprivate var dispatchInterval: DispatchTimeInterval {
        let (seconds, attoseconds) = self.components
        let milliseconds =
            seconds >= Int64(Int32.max) / 1000
            ? Int64(Int32.max) : max(0, seconds * 1000 + attoseconds / 1_000_000_000_000_000)
        return .milliseconds(Int(milliseconds))
    }
}

private func validateUserID(_ userID: String) throws(GPGError) {
    guard !userID.isEmpty, !userID.utf8.contains(where: { $0 < 0x20 || $0 == 0x7f }) else {
        throw GPGError(code: .invalidArgument, message: "user ID is empty or contains control characters")
    }
}

/// `gpgme_op_sign` (detached, binary) on the keyring's queue.
private func signOnQueue(_ ctx: OpaquePointer, _ data: [UInt8], _ fpr: String) throws(GPGError) -> GPGSignature {
    guard let key = try lookUpKey(ctx, fpr, secret: true) else {
        throw GPGError(code: .keyNotFound, message: "no secret key \(fpr)")
    }
    defer { gpgme_key_unref(key) }
    gpgme_signers_clear(ctx)
    defer { gpgme_signers_clear(ctx) }
    try check(gpgme_signers_add(ctx, key), "selecting the signing key")
    gpgme_set_armor(ctx, 0)
    gpgme_set_textmode(ctx, 0)
    let storage = data.isEmpty ? [0] : data
    return try storage.withUnsafeBufferPointer { (buffer) throws(GPGError) -> GPGSignature in
        var input: gpgme_data_t?
        // copy = 0: gpgme reads `buffer` in place; it stays valid until the data object is released below.
        try check(
            gpgme_data_new_from_mem(
                &input,
                UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self),
                data.count,
                0
            ),
            "wrapping the data"
        )
        defer { gpgme_data_release(input) }
        let signature = try withOutputData(wipe: false) { (output) throws(GPGError) in
            try check(gpgme_op_sign(ctx, input, output, GPGME_SIG_MODE_DETACH), "signing")
        }
        guard let result = gpgme_op_sign_result(ctx), result.pointee.invalid_signers == nil,
            let made = result.pointee.signatures, !signature.isEmpty
        else {
            throw GPGError(code: .operationFailed, message: "gpg made no signature with \(fpr)")
        }
        return GPGSignature(bytes: signature, hashAlgorithm: Int(made.pointee.hash_algo.rawValue))
    }
}

/// Runs `body` with a fresh memory data object for output that nobody reads (it is released unread), and returns
/// `body`'s gpgme result.
private func withOutputDataResult(_ body: (gpgme_data_t?) -> gpgme_error_t) throws(GPGError) -> gpgme_error_t {
    var data: gpgme_data_t?
    try check(gpgme_data_new(&data), "creating a data object")
    defer { gpgme_data_release(data) }
    return body(data)
}

/// One `deleteUserID` edit session: the answers to gpg's `--edit-key` prompts, in order. Used only by gpgme's
/// interact callback, which gpgme calls on the thread running `gpgme_op_interact` (the keyring's queue).
private final class DeleteUserIDSession {
    /// 1-based position of the user ID in the key, as `--edit-key` numbers them.
    let number: Int
    /// How many `keyedit.prompt` lines were answered.
    var prompts = 0
    var confirmed = false
    var saved = false
    /// A prompt the session does not know (the answer was an error).
    var unexpected: String?

    init(number: Int) {
        self.number = number
    }

    /// The line to send for a prompt, or nil for one this session does not expect.
    func answer(keyword: String, arguments: String) -> String? {
        switch (keyword, arguments) {
        case ("GET_LINE", "keyedit.prompt"):
            self.prompts += 1
            switch self.prompts {
            case 1: return "uid \(self.number)"
            case 2: return "deluid"
            case 3 where self.confirmed:
                self.saved = true
                return "save"
            default: return nil
            }
        case ("GET_BOOL", "keyedit.remove.uid.okay"):
            guard self.prompts == 2 else { return nil }
            self.confirmed = true
            return "y"
        default:
            return nil
        }
    }
}

/// gpgme's interact callback for `deleteUserID`: status lines without a descriptor need no answer; prompts get
/// the session's answer, and an unexpected prompt ends the session with an error (gpg then saves nothing).
private let deleteUserIDCallback: gpgme_interact_cb_t = { opaque, keyword, arguments, fd in
    guard let opaque, let keyword else { return 0 }
    guard fd >= 0 else { return 0 }
    let session = Unmanaged<DeleteUserIDSession>.fromOpaque(opaque).takeUnretainedValue()
    let kw = String(cString: keyword)
    let args = arguments.map { String(cString: $0) } ?? ""
    guard let line = session.answer(keyword: kw, arguments: args) else {
        session.unexpected = "\(kw) \(args)"
        return gpgme_err_make(GPG_ERR_SOURCE_USER_1, GPG_ERR_GENERAL)
    }
    let bytes = Array((line + "\n").utf8)
    let written = bytes.withUnsafeBytes { gpgme_io_writen(fd, $0.baseAddress, $0.count) }
    return written == 0 ? 0 : gpgme_err_make(GPG_ERR_SOURCE_USER_1, GPG_ERR_EIO)
}
