import Foundation

/// Real source RPMs made with `rpmbuild -bs` at test time (nothing binary is committed).
public enum SRPMFixture {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    public static var isAvailable: Bool { FileManager.default.isExecutableFile(atPath: "/usr/bin/rpmbuild") }

    /// Builds `NAME-VERSION-RELEASE.src.rpm` of a tiny noarch package with no dependencies, in its own directory.
    public static func make(
        name: String = "hello-koper",
        version: String = "1.0",
        release: String = "1",
        epoch: Int? = nil
    ) async throws -> String {
        let dir = try makeTemporaryDirectory(prefix: "koper-srpm")
        let spec = """
            Name: \(name)
            Version: \(version)
            Release: \(release)
            \(epoch.map { "Epoch: \($0)" } ?? "")
            Summary: Koper test package
            License: MIT
            BuildArch: noarch
            AutoReqProv: no

            %description
            A package for Koper's tests.

            %install
            mkdir -p %{buildroot}/usr/share/\(name)
            echo hello > %{buildroot}/usr/share/\(name)/hello.txt

            %files
            /usr/share/\(name)/hello.txt

            """
        return try await build(spec: spec, name: name, in: dir)
    }

    /// A noarch SRPM whose %build prints `tick N` once a second for `seconds` seconds: time to watch, cancel or kill
    /// a running build.
    public static func slow(name: String, seconds: Int) async throws -> String {
        let spec = """
            Name: \(name)
            Version: 1.0
            Release: 1
            Summary: slow
            License: MIT
            BuildArch: noarch
            AutoReqProv: no

            %description
            Slow.

            %build
            for i in $(seq 1 \(seconds)); do echo "tick $i"; sleep 1; done

            %install
            mkdir -p %{buildroot}/usr/share/\(name)
            echo hi > %{buildroot}/usr/share/\(name)/f

            %files
            /usr/share/\(name)/f

            """
        return try await self.fromSpec(spec, name: name)
    }

    /// `rpmbuild -bs` of `spec` (written as `NAME.spec`) in its own directory; the path of the SRPM.
    public static func fromSpec(_ spec: String, name: String) async throws -> String {
        try await build(spec: spec, name: name, in: try makeTemporaryDirectory(prefix: "koper-srpm"))
    }

    static func build(spec: String, name: String, in dir: String) async throws -> String {
        try spec.write(toFile: "\(dir)/\(name).spec", atomically: true, encoding: .utf8)
        let r = try await Command.run(
            "/usr/bin/rpmbuild",
            ["-bs", "--define", "_topdir \(dir)/top", "--define", "_srcrpmdir \(dir)", "\(dir)/\(name).spec"],
            environment: ["HOME": dir]
        )
        guard r.status == 0 else { throw Failure(description: "rpmbuild -bs failed: \(r.output)") }
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".src.rpm") }
        guard let f = files.first else { throw Failure(description: "rpmbuild made no SRPM: \(r.output)") }
        return "\(dir)/\(f)"
    }
}
