public import Logging

/// The logging set-up every Koper service uses: swift-log's `StreamLogHandler` on standard error at the configured
/// level (the format is swift-log's: `2025-01-01T12:00:00+0000 info koper.keygen : key=value message`).
public enum ServiceLogging {
    /// Installs the process-wide handler. Call once, early in `run()`, before the first `Logger` is made
    /// (`LoggingSystem.bootstrap` traps when called twice).
    public static func bootstrap(level: Logger.Level) {
        LoggingSystem.bootstrap { label in self.makeHandler(label: label, level: level) }
    }

    /// The handler `bootstrap` installs, for one label.
    public static func makeHandler(label: String, level: Logger.Level) -> StreamLogHandler {
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
}

extension Logger.Level {
    /// The level a config's `log_level` names: `trace`, `debug`, `info`, `notice`, `warning`, `error`, `critical`
    /// (ASCII case-insensitive). Anything else is a `ConfigError` for `field`.
    public init(configValue: String, field: String = "log_level") throws(ConfigError) {
        guard let level = Logger.Level(rawValue: configValue.lowercased()) else {
            let names = Logger.Level.allCases.map(\.rawValue)
            throw .invalid(field, "must be one of \(names.joined(separator: ", "))")
        }
        self = level
    }
}
