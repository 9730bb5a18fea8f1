import Foundation
import GPG
import LibCrypto
import Logging

/// The result of `ensure`: the project's key, and whether this call gave it one.
struct EnsuredKey: Sendable, Equatable {
    var fingerprint: String
    /// Long key id: the last 16 hex digits of the fingerprint.
    var keyID: String
    var userID: String
    var created: Bool
}

/// One OpenPGP key per project in Keygen's gpg keyring, a pool of spare keys, expiry prolongation and signing.
///
/// - **Two keyrings on one home.** `keyring` serves requests (user-id changes, exports, reference signatures);
///   `backgroundKeyring` generates spares and prolongs expiries. Each `GPGKeyring` runs its operations one at a time
///   on its own queue, so a minute-long RSA-4096 generation never queues in front of a request. gpg's own locking
///   keeps the shared keybox consistent.
/// - **Index first.** Assignment records `project → spare` (not ready) in `keys.json` before touching the key, then
///   replaces the placeholder user id and marks it ready; a crash in between is finished at the next start or the
///   next `ensure` (every step is idempotent).
/// - **Never blocks a request on key generation** unless the pool is empty; then it generates on the request path
///   and logs a warning (raise `pool_size` if that shows up).
/// - Private keys never leave the keyring through this type: there is no method that returns one. (The fast signer
///   will export each secret key once into memory, inside `SignerFactory`.)
actor KeyService {
    let config: KeygenConfig
    let keyring: GPGKeyring
    let backgroundKeyring: GPGKeyring
    let lanes: SigningLanes
    let logger: Logger

    private var index: KeyIndex
    /// Assignments under way, by `owner/project`, so concurrent `ensure` calls for one project share one.
    private var assignments: [String: Task<KeyIndex.ProjectKey, any Error>] = [:]
    /// Signers by fingerprint (the fast signer keeps a parsed key; worth caching).
    private var signers: [String: any Signer] = [:]
    private var refillTask: Task<Void, Never>?
    private var prolongTask: Task<Void, Never>?
    private var stopped = false

    /// Opens (creating if needed) the state directory, the GnuPG home and its `gpg.conf`, and the index. Blocking:
    /// call it at startup. `start()` begins the background work.
    init(config: KeygenConfig, logger: Logger) throws {
        try makePrivateDirectory(config.stateDir)
        try makePrivateDirectory(config.gnupgHome)
        try writeDefaultGPGConf(home: config.gnupgHome)
        let timeout = Duration.seconds(Int64(config.gpgTimeoutSeconds))
        self.config = config
        self.logger = logger
        self.keyring = try GPGKeyring(homeDirectory: config.gnupgHome, operationTimeout: timeout, logger: logger)
        self.backgroundKeyring = try GPGKeyring(
            homeDirectory: config.gnupgHome,
            operationTimeout: timeout,
            logger: logger
        )
        self.lanes = SigningLanes(count: ProcessInfo.processInfo.activeProcessorCount)
        self.index = try KeyIndex.load(path: config.indexPath)
    }

    // MARK: Lifecycle

    /// Reconciles the index with the keyring, finishes interrupted assignments, and starts the pool refill and the
    /// periodic expiry check.
    func start() async {
        await self.reconcile()
        for name in self.index.projects.keys.sorted() where self.index.projects[name]?.ready == false {
            do {
                try await self.finishAssignment(name)
            } catch {
                self.logger.error(
                    "cannot finish an interrupted key assignment",
                    metadata: ["project": "\(name)", "error": "\(error)"]
                )
            }
        }
        self.requestRefill()
        self.prolongTask = Task {
            while !Task.isCancelled {
                _ = await self.prolongExpiringKeys()
                try? await Task.sleep(for: .seconds(self.config.prolongCheckIntervalSeconds))
            }
        }
    }

    /// Stops the background work, waiting for a key generation in progress to finish and be recorded.
    func stop() async {
        self.stopped = true
        let refill = self.refillTask
        let prolong = self.prolongTask
        refill?.cancel()
        prolong?.cancel()
        await refill?.value
        await prolong?.value
    }

    // MARK: Requests

    /// The project's key, assigning a spare (or, with an empty pool, generating one) if it has none. Idempotent.
    func ensure(_ project: ProjectRef) async throws -> EnsuredKey {
        if let key = self.index.projects[project.key], key.ready {
            return Self.describe(key, created: false)
        }
        if let running = self.assignments[project.key] {
            return Self.describe(try await running.value, created: false)
        }
        let task = Task { try await self.assign(project) }
        self.assignments[project.key] = task
        defer { self.assignments[project.key] = nil }
        return Self.describe(try await task.value, created: true)
    }

    /// The project's armoured public key (user id and self-signatures included).
    func publicKey(_ project: ProjectRef) async throws -> [UInt8] {
        let key = try self.readyKey(project)
        return try await self.keyring.exportPublicKey(fingerprint: key.fingerprint, armored: true)
    }

    /// A binary detached signature over `data` by the project's key.
    func sign(_ data: [UInt8], project: ProjectRef, digest: DigestAlgorithm) async throws -> [UInt8] {
        let key = try self.readyKey(project)
        let signer = try await self.signer(fingerprint: key.fingerprint)
        return try await self.lanes.run { try signer.sign(data, digest: digest) }
    }

    struct Health: Sendable {
        var projects: Int
        var spares: Int
        var poolSize: Int
        var refilling: Bool
    }

    func health() -> Health {
        Health(
            projects: self.index.projects.count,
            spares: self.index.spares.count,
            poolSize: self.config.poolSize,
            refilling: self.refillTask != nil
        )
    }

    /// A copy of the index (tests, diagnostics).
    func indexSnapshot() -> KeyIndex { self.index }

    // MARK: Assignment

    private func readyKey(_ project: ProjectRef) throws(KeygenError) -> KeyIndex.ProjectKey {
        guard let key = self.index.projects[project.key], key.ready else {
            throw KeygenError(.notFound, "no key for \(project.key)")
        }
        return key
    }

    private static func describe(_ key: KeyIndex.ProjectKey, created: Bool) -> EnsuredKey {
        EnsuredKey(
            fingerprint: key.fingerprint,
            keyID: String(key.fingerprint.suffix(16)),
            userID: key.userID,
            created: created
        )
    }

    private func assign(_ project: ProjectRef) async throws -> KeyIndex.ProjectKey {
        let userID = project.userID(signDomain: self.config.signDomain)
        if self.index.projects[project.key] == nil {
            guard !self.index.spares.isEmpty else {
                return try await self.generateOnRequestPath(project, userID: userID)
            }
            let spare = self.index.spares.removeFirst()
            self.index.projects[project.key] = KeyIndex.ProjectKey(
                fingerprint: spare.fingerprint,
                userID: userID,
                assigned: now(),
                ready: false
            )
            do {
                try self.saveIndex()
            } catch {
                self.index.projects[project.key] = nil
                self.index.spares.insert(spare, at: 0)
                throw error
            }
            self.logger.info(
                "spare key assigned",
                metadata: [
                    "project": "\(project.key)", "gpg.fingerprint": "\(spare.fingerprint)",
                    "spares": "\(self.index.spares.count)",
                ]
            )
            self.requestRefill()
        }
        try await self.finishAssignment(project.key)
        guard let key = self.index.projects[project.key] else {
            throw KeygenError(.unavailable, "the key of \(project.key) vanished from the index")
        }
        return key
    }

    private func generateOnRequestPath(_ project: ProjectRef, userID: String) async throws -> KeyIndex.ProjectKey {
        self.logger.warning(
            "key pool is empty: generating a key on the request path",
            metadata: ["project": "\(project.key)", "pool_size": "\(self.config.poolSize)"]
        )
        let fingerprint = try await self.keyring.generateKey(
            userID: userID,
            algorithm: self.config.keyType,
            expires: self.config.keyLifetime
        )
        let key = KeyIndex.ProjectKey(fingerprint: fingerprint, userID: userID, assigned: now(), ready: true)
        self.index.projects[project.key] = key
        try self.saveIndex()
        self.requestRefill()
        return key
    }

    /// Gives an assigned key exactly the project's user id (adds it, deletes the spare's placeholder), then marks it
    /// ready. Each step checks the key first, so it can be repeated after a crash.
    private func finishAssignment(_ name: String) async throws {
        guard let key = self.index.projects[name] else { throw KeygenError(.notFound, "no key for \(name)") }
        guard let info = try await self.keyring.key(fingerprint: key.fingerprint), info.hasSecretKey else {
            throw KeygenError(.unavailable, "key \(key.fingerprint) of \(name) is not in the keyring")
        }
        if !info.userIDs.contains(key.userID) {
            try await self.keyring.addUserID(fingerprint: key.fingerprint, userID: key.userID)
        }
        for other in info.userIDs where other != key.userID && SparePlaceholder.matches(other) {
            try await self.keyring.deleteUserID(fingerprint: key.fingerprint, userID: other)
        }
        guard let after = try await self.keyring.key(fingerprint: key.fingerprint), after.userIDs == [key.userID] else {
            throw KeygenError(.unavailable, "key \(key.fingerprint) of \(name) did not get its user id")
        }
        guard var current = self.index.projects[name], current.fingerprint == key.fingerprint else { return }
        if !current.ready {
            current.ready = true
            self.index.projects[name] = current
            try self.saveIndex()
        }
    }

    private func signer(fingerprint: String) async throws -> any Signer {
        if let signer = self.signers[fingerprint] { return signer }
        guard let info = try await self.keyring.key(fingerprint: fingerprint) else {
            throw KeygenError(.unavailable, "key \(fingerprint) is not in the keyring")
        }
        let signer = try await SignerFactory.makeSigner(
            for: SigningKey(fingerprint: info.fingerprint, keyID: info.keyID, created: info.created),
            keyring: self.keyring
        )
        self.signers[fingerprint] = signer
        return signer
    }

    // MARK: Pool

    private func requestRefill() {
        guard !self.stopped, self.refillTask == nil, self.index.spares.count < self.config.poolSize else { return }
        self.refillTask = Task { await self.refill() }
    }

    private func refill() async {
        var failures = 0
        while !self.stopped, !Task.isCancelled, self.index.spares.count < self.config.poolSize {
            let token =
                (try? Crypto.randomBytes(6)).map { Crypto.hex($0) }
                ?? String(UInt64.random(in: 0...UInt64.max), radix: 16)
            let placeholder = SparePlaceholder.make(token: token)
            do {
                let fingerprint = try await self.backgroundKeyring.generateKey(
                    userID: placeholder,
                    algorithm: self.config.keyType,
                    expires: self.config.keyLifetime
                )
                self.index.spares.append(KeyIndex.Spare(fingerprint: fingerprint, userID: placeholder, created: now()))
                failures = 0
                self.logger.info(
                    "spare key generated",
                    metadata: ["gpg.fingerprint": "\(fingerprint)", "spares": "\(self.index.spares.count)"]
                )
                try self.saveIndex()
            } catch {
                failures += 1
                self.logger.error(
                    "spare key generation failed",
                    metadata: ["error": "\(error)", "failures": "\(failures)"]
                )
                try? await Task.sleep(for: .seconds(min(300, 5 << min(failures, 6))))
            }
        }
        self.refillTask = nil
    }

    // MARK: Expiry

    /// Moves the expiry of every indexed key (projects and spares) that expires within `prolong_before_days` to
    /// `key_expiry_days` from `now`. Returns the fingerprints it prolonged. A prolonged key's public key changes
    /// (new self-signature), so whoever publishes `pubkey.gpg` should fetch it again.
    func prolongExpiringKeys(now current: Int64 = now()) async -> [String] {
        let threshold = current + Int64(self.config.prolongBeforeDays) * 86_400
        let target = current + Int64(self.config.keyExpiryDays) * 86_400
        var prolonged: [String] = []
        for fingerprint in self.index.fingerprints {
            do {
                guard let info = try await self.backgroundKeyring.key(fingerprint: fingerprint),
                    let expires = info.expires,
                    expires <= threshold
                else { continue }
                // extendExpiry counts from max(expiry, now).
                let extra = max(86_400, target - max(expires, current))
                try await self.backgroundKeyring.extendExpiry(fingerprint: fingerprint, by: .seconds(extra))
                prolonged.append(fingerprint)
                self.logger.info(
                    "key expiry prolonged",
                    metadata: ["gpg.fingerprint": "\(fingerprint)", "gpg.old_expiry": "\(expires)"]
                )
            } catch {
                self.logger.error(
                    "key expiry check failed",
                    metadata: ["gpg.fingerprint": "\(fingerprint)", "error": "\(error)"]
                )
            }
        }
        return prolonged
    }

    // MARK: Index

    private func saveIndex() throws(KeygenError) {
        try self.index.save(path: self.config.indexPath)
    }

    /// Drops index entries whose key is gone from the keyring, and adopts spare keys that were generated but not
    /// recorded (a crash between generation and the index write).
    private func reconcile() async {
        let keys: [GPGKeyInfo]
        do {
            keys = try await self.backgroundKeyring.listKeys()
        } catch {
            self.logger.error("cannot list the keyring", metadata: ["error": "\(error)"])
            return
        }
        var byFingerprint: [String: GPGKeyInfo] = [:]
        for key in keys where key.hasSecretKey { byFingerprint[key.fingerprint] = key }
        var changed = false
        self.index.spares.removeAll { spare in
            guard byFingerprint[spare.fingerprint] == nil else { return false }
            self.logger.warning(
                "spare key missing from the keyring; dropped",
                metadata: ["gpg.fingerprint": "\(spare.fingerprint)"]
            )
            changed = true
            return true
        }
        for name in self.index.projects.keys.sorted() {
            guard let key = self.index.projects[name], byFingerprint[key.fingerprint] == nil else { continue }
            self.logger.error(
                "project key missing from the keyring; the next ensure makes a new one",
                metadata: ["project": "\(name)", "gpg.fingerprint": "\(key.fingerprint)"]
            )
            self.index.projects[name] = nil
            changed = true
        }
        let known = Set(self.index.fingerprints)
        for key in keys.sorted(by: { $0.created < $1.created })
        where key.hasSecretKey && !known.contains(key.fingerprint) {
            guard let first = key.userIDs.first, key.userIDs.allSatisfy(SparePlaceholder.matches), !key.isRevoked else {
                continue
            }
            self.index.spares.append(KeyIndex.Spare(fingerprint: key.fingerprint, userID: first, created: key.created))
            self.logger.info("unrecorded spare key adopted", metadata: ["gpg.fingerprint": "\(key.fingerprint)"])
            changed = true
        }
        if changed {
            do {
                try self.saveIndex()
            } catch {
                self.logger.error("cannot write the key index", metadata: ["error": "\(error)"])
            }
        }
    }
}

func now() -> Int64 { Int64(Date().timeIntervalSince1970) }

/// Creates `path` (and parents) and makes it mode 0700.
private func makePrivateDirectory(_ path: String) throws {
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    guard chmod(path, 0o700) == 0 else { throw KeygenError(.unavailable, "cannot chmod \(path) (errno \(errno))") }
}

/// gpgme has no per-call hash option, so Keygen's home gets a `gpg.conf` that makes gpg's signatures (the reference
/// signer) SHA-512. An existing `gpg.conf` is left alone.
private func writeDefaultGPGConf(home: String) throws {
    let path = home + "/gpg.conf"
    guard !FileManager.default.fileExists(atPath: path) else { return }
    let text = """
        # Written by koper-keygen: signatures made by gpg itself use SHA-512.
        personal-digest-preferences SHA512 SHA384 SHA256

        """
    try writeFileAtomically(Array(text.utf8), to: path, mode: 0o600)
}
