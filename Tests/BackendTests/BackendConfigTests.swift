import Foundation
import ServiceKit
import Testing

@testable import Backend

/// The retry, probe and warning settings of `backend.json` (issue 10): defaults, and each bad value refused with
/// the field named.
struct BackendConfigTests {
    func config(_ json: String) throws -> BackendConfig {
        let dir = NSTemporaryDirectory() + "koper-bcfg-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/backend.json"
        let base = """
            "frontend_url": "http://127.0.0.1:1", "backend_secret": "s", "results_url": "http://127.0.0.1:2/results",
            "results_dir": "/tmp/r", "state_dir": "/tmp/s", "tickets_database": "dbname=t", "ssh_private_key": "/k"
            """
        try "{\(base)\(json.isEmpty ? "" : ", " + json)}".write(toFile: path, atomically: true, encoding: .utf8)
        return try BackendConfig.load(path: path)
    }

    @Test func defaults() throws {
        let c = try self.config("")
        #expect(c.reportRetryDelay == 1 && c.reportRetryMaxDelay == 60)
        #expect(c.maxInfraRetries == 5 && c.infraRetryDelay == 10 && c.infraRetryMaxDelay == 300)
        #expect(c.probeInterval == 1 && c.probeMaxInterval == 10 && c.warningInterval == 30)
        let set = try self.config(#""report_retry_delay": 0.5, "report_retry_max_delay": 30, "max_infra_retries": 0"#)
        #expect(set.reportRetryDelay == 0.5 && set.reportRetryMaxDelay == 30 && set.maxInfraRetries == 0)
    }

    @Test(arguments: [
        (#""report_retry_delay": 0"#, "report_retry_delay"),
        (#""report_retry_max_delay": 7200"#, "report_retry_max_delay"),
        (#""report_retry_delay": 5, "report_retry_max_delay": 2"#, "report_retry_max_delay"),
        (#""infra_retry_delay": -1"#, "infra_retry_delay"),
        (#""infra_retry_delay": 400"#, "infra_retry_max_delay"),
        (#""max_infra_retries": -1"#, "max_infra_retries"),
        (#""probe_interval": 0"#, "probe_interval"),
        (#""probe_interval": 20"#, "probe_max_interval"),
        (#""warning_interval": 0"#, "warning_interval"),
    ])
    func refusals(_ json: String, _ field: String) throws {
        do {
            _ = try self.config(json)
            Issue.record("accepted \(json)")
        } catch let error as ConfigError {
            #expect(error.field == field, "\(error)")
        }
    }
}
