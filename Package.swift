// swift-tools-version:6.0
//
// Koper — a Copr-class RPM build and repository service.
//
// The manifest is the architecture (docs/architecture.md). Layers, bottom to top:
//   C system libraries   each imported by exactly one Swift wrapper module
//   Pure libraries       no I/O, no C: HTTPCore, CoprModel, RPM
//   I/O libraries        HTTPServer (Dispatch), Postgres (libpq), LibCrypto (libcrypto)
//   Services             thin executables: koper-frontend, koper-backend, koper-builder,
//                        koper-distgit, koper-keygen. Executables never import each other.
// Nothing in the product graph is built on SwiftNIO.
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

let package = Package(
    name: "Koper",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Scheduling", targets: ["Scheduling"]),
        .library(name: "RepoPublisher", targets: ["RepoPublisher"]),
        .executable(name: "koper-frontend", targets: ["Frontend"]),
        .executable(name: "koper-backend", targets: ["Backend"]),
        .executable(name: "koper-builder", targets: ["BuilderAgent"]),
        .executable(name: "koper-distgit", targets: ["DistGitProxy"]),
        .executable(name: "koper-keygen", targets: ["Keygen"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.5.0"),
    ],
    targets: [
        // MARK: C system libraries (module.modulemap + shim.h; one Swift wrapper each)
        /** libpq, wrapped by Postgres. */
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        /** libcrypto (OpenSSL 3), wrapped by LibCrypto. */
        .systemLibrary(name: "CLibcrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        /** zlib, wrapped by Gzip. */
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        /** libcurl (with fixed-arity setopt/getinfo wrappers in shim.h), wrapped by HTTPClient. */
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        /** libssh, wrapped by SSH. */
        .systemLibrary(name: "CLibSSH", pkgConfig: "libssh", providers: [.apt(["libssh-dev"])]),
        /** gpgme, wrapped by GPG. */
        .systemLibrary(name: "CGPGME", pkgConfig: "gpgme", providers: [.apt(["libgpgme-dev"])]),

        // MARK: Pure libraries (no I/O, no C)
        /** HTTP/1.1 request parser with limits, response serialiser, router, multipart parser. */
        .target(name: "HTTPCore", swiftSettings: swiftSettings),
        /** Copr domain model: states and their derivation, names, chroot globs, field validation, .repo files, NEVRA/EVR. */
        .target(name: "CoprModel", dependencies: ["RPM"], swiftSettings: swiftSettings),
        /** JSON values, a strict bounded parser and a compact serialiser. */
        .target(name: "KoperJSON", swiftSettings: swiftSettings),
        /** The internal wire contract (Codable): task description and summary, claim, update, action, poll answer. */
        .target(name: "KoperProtocol", dependencies: ["CoprModel", "KoperJSON"], swiftSettings: swiftSettings),
        /** Backend dispatch order: lanes, owner/arch/sandbox round robin, caps, ageing (no I/O). */
        .target(name: "Scheduling", swiftSettings: swiftSettings),
        /** OpenPGP v4: gpg secret-key exports (RSA), detached signature packets (build/parse), armor; crypto via protocols. */
        .target(name: "OpenPGP", swiftSettings: swiftSettings),
        /** createrepo_c-identical primary/filelists/other XML fragments and repomd.xml (no I/O). */
        .target(name: "Repodata", dependencies: ["RPM"], swiftSettings: swiftSettings),
        /** Bounds-checked RPM lead / signature header / main header reader; rpmvercmp (the only one). */
        .target(name: "RPM", swiftSettings: swiftSettings),

        // MARK: I/O libraries
        /** HTTP/1.1 server on libdispatch sources: keep-alive, pipelining, deadlines, backpressure. */
        .target(
            name: "HTTPServer",
            dependencies: [
                "HTTPCore", "AtomicFile", .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: swiftSettings
        ),
        /** Read-only file tree under a URL prefix: autoindex, ranges, confinement (the Backend's /results). */
        .target(
            name: "StaticFiles",
            dependencies: ["HTTPCore", "HTTPServer", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        /** libpq: PGQuery (typed parameters), typed row decoding, connections on serial queues, a bounded pool, transactions, migrations, LISTEN, batched lookups. */
        .target(
            name: "Postgres",
            dependencies: ["CLibPQ", "KoperJSON", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        /** The Frontend's store: record types and one repository per aggregate, holding all of the Frontend's SQL. */
        .target(
            name: "KoperStore",
            dependencies: ["Postgres", "KoperJSON", "CoprModel", "KoperProtocol"],
            swiftSettings: swiftSettings
        ),
        /** Ticket service (resalloc-style builder leases): pools, tickets, hooks; state in its own PostgreSQL database. */
        .target(
            name: "Tickets",
            dependencies: [
                "Postgres", "KoperJSON",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Subprocess", package: "swift-subprocess"),
            ],
            swiftSettings: swiftSettings
        ),
        /** libcrypto: SHA-1/256/512, RSA PKCS#1 v1.5 signing and verification, secure random bytes, constant-time comparison. */
        .target(name: "LibCrypto", dependencies: ["CLibcrypto"], swiftSettings: swiftSettings),
        /** RPM signing: OpenPGP keys on libcrypto, packet checks, signature header insertion (temp file + fsync + rename). */
        .target(
            name: "RPMSign",
            dependencies: ["RPM", "OpenPGP", "LibCrypto", "AtomicFile"],
            swiftSettings: swiftSettings
        ),
        /** Incremental repodata per directory: digest-keyed index, gzip members, atomic swap, batched publishes; a verifier of published repositories (checksums, listing, signatures). */
        .target(
            name: "RepoPublisher",
            dependencies: [
                "Repodata", "RPM", "Gzip", "LibCrypto", "AtomicFile", "OpenPGP", "RPMSign",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        /** zlib: gzip members in and out, bounded decompression (concatenated members supported). */
        .target(name: "Gzip", dependencies: ["CZlib"], swiftSettings: swiftSettings),
        /** Whole-file replacement (temp file, fsync, rename, fsync of the directory) and the one EINTR retry helper. */
        .target(name: "AtomicFile", swiftSettings: swiftSettings),
        /** libcurl: bounded HTTP client on its own serial queues (Backend → Frontend, builders → sources). */
        .target(
            name: "HTTPClient",
            dependencies: ["CCurl", "AtomicFile", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        /** libssh: one session per serial queue; exec with bounded output and timeouts; atomic SFTP; pinned host keys. */
        .target(
            name: "SSH",
            dependencies: ["CLibSSH", "AtomicFile", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        /** gpgme: Keygen's keyring (generate, export, prolong keys; reference signing). */
        .target(
            name: "GPG",
            dependencies: ["CGPGME", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        /** Service plumbing: config loading and validation, logging, bearer secrets, a retrying JSON client. */
        .target(
            name: "ServiceKit",
            dependencies: ["HTTPClient", "LibCrypto", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),

        // MARK: Services (thin @main + the service's own code)
        /** koper-frontend: API v3, .repo files, uploads, internal /backend/ API, admin CLI; request → KoperStore → response. */
        .executableTarget(
            name: "Frontend",
            dependencies: [
                "HTTPCore", "HTTPServer", "HTTPClient", "Postgres", "LibCrypto", "CoprModel", "RPM", "KoperJSON",
                "KoperProtocol", "KoperStore", "ServiceKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: swiftSettings
        ),
        /** koper-backend: one long-poll to the Frontend, dispatch, ticket service, workers behind a builder transport, signing, publishing. */
        .executableTarget(
            name: "Backend",
            dependencies: [
                "HTTPCore", "HTTPServer", "HTTPClient", "StaticFiles", "Scheduling", "Tickets", "SSH", "Gzip",
                "KoperJSON",
                "CoprModel", "RPMSign", "RepoPublisher", "AtomicFile", "KoperProtocol", "ServiceKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        /** koper-builder: one build on one builder host, from the wire contract's TaskDescription. */
        .executableTarget(
            name: "BuilderAgent",
            dependencies: [
                "CoprModel", "RPM", "LibCrypto", "KoperJSON", "AtomicFile", "KoperProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: swiftSettings
        ),
        /** koper-distgit: source cache (later issue). */
        .executableTarget(
            name: "DistGitProxy",
            dependencies: [.product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swiftSettings
        ),
        /** koper-keygen: per-project keys and signing (issue 5). */
        .executableTarget(
            name: "Keygen",
            dependencies: [
                "GPG", "HTTPCore", "HTTPServer", "KoperJSON", "LibCrypto", "CoprModel", "RPMSign", "AtomicFile",
                "ServiceKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Tests
        /** Fixtures: a throw-away PostgreSQL cluster, free ports, HTTP test client, integration gates, one synthetic RPM writer. */
        .target(name: "TestSupport", dependencies: ["Postgres"], path: "Tests/TestSupport"),
        /** Seeded mutation fuzzing of the parsers (targets, invariants, mutator); run by the tests and bench/fuzz. */
        .target(name: "KoperFuzz", dependencies: ["HTTPCore", "RPM", "KoperJSON"], path: "Tests/KoperFuzz"),
        .testTarget(name: "HTTPCoreTests", dependencies: ["HTTPCore", "KoperFuzz"]),
        .testTarget(name: "CoprModelTests", dependencies: ["CoprModel"]),
        .testTarget(name: "KoperJSONTests", dependencies: ["KoperJSON", "KoperFuzz"]),
        .testTarget(name: "KoperProtocolTests", dependencies: ["KoperProtocol", "KoperJSON", "CoprModel"]),
        .testTarget(name: "AtomicFileTests", dependencies: ["AtomicFile"]),
        .testTarget(name: "SchedulingTests", dependencies: ["Scheduling"]),
        .testTarget(name: "RPMTests", dependencies: ["RPM", "TestSupport", "KoperFuzz"]),
        .testTarget(name: "LibCryptoTests", dependencies: ["LibCrypto", "TestSupport"]),
        .testTarget(
            name: "StaticFilesTests",
            dependencies: [
                "StaticFiles", "HTTPServer", "HTTPCore", "TestSupport", .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "TicketsTests", dependencies: ["Tickets", "Postgres", "TestSupport"]),
        .testTarget(
            name: "SSHTests",
            dependencies: ["SSH", "TestSupport", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "BuilderAgentTests",
            dependencies: [
                "BuilderAgent", "CoprModel", "RPM", "LibCrypto", "KoperJSON", "KoperProtocol", "TestSupport",
            ]
        ),
        .testTarget(
            name: "KeygenTests",
            dependencies: [
                "Keygen", "GPG", "HTTPCore", "HTTPServer", "KoperJSON", "ServiceKit", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "OpenPGPTests", dependencies: ["OpenPGP", "LibCrypto", "TestSupport"]),
        .testTarget(name: "RPMSignTests", dependencies: ["RPMSign", "RPM", "OpenPGP", "LibCrypto", "TestSupport"]),
        .testTarget(name: "RepodataTests", dependencies: ["Repodata", "RPM", "LibCrypto", "TestSupport"]),
        .testTarget(
            name: "RepoPublisherTests",
            dependencies: [
                "RepoPublisher", "Repodata", "Gzip", "LibCrypto", "OpenPGP", "RPMSign", "RPM", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "GzipTests", dependencies: ["Gzip", "TestSupport"]),
        .testTarget(
            name: "HTTPClientTests",
            dependencies: [
                "HTTPClient", "TestSupport", .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "GPGTests",
            dependencies: ["GPG", "TestSupport", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(name: "HTTPServerTests", dependencies: ["HTTPServer", "HTTPCore", "TestSupport"]),
        .testTarget(
            name: "ServiceKitTests",
            dependencies: [
                "ServiceKit", "HTTPClient", "HTTPServer", "HTTPCore", .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres", "TestSupport", "KoperJSON"]),
        .testTarget(
            name: "FrontendTests",
            dependencies: [
                "Frontend", "TestSupport", "HTTPCore", "Postgres", "KoperJSON", "CoprModel", "LibCrypto", "KoperStore",
                "KoperProtocol",
            ],
            exclude: ["Fixtures"]
        ),
        /** The Backend against a real koper-frontend and koper-builder, with builders reached through a local transport. */
        .testTarget(
            name: "BackendTests",
            dependencies: [
                "Backend", "KoperProtocol", "KoperJSON", "CoprModel", "Tickets", "Postgres", "HTTPClient",
                "RepoPublisher",
                "TestSupport", .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
                .product(name: "Subprocess", package: "swift-subprocess"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// Warnings are errors in debug builds (`swift build`, `swift test`, CI) of this package's own Swift targets, tests
// included. Dependencies are not affected, nor release builds (deploy/koper-stack, the benchmarks).
for target in package.targets where [.regular, .executable, .test].contains(target.type) {
    target.swiftSettings =
        (target.swiftSettings ?? []) + [.unsafeFlags(["-warnings-as-errors"], .when(configuration: .debug))]
}
