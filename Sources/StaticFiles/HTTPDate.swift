#if canImport(Glibc)
import Glibc
#endif

/// IMF-fixdate (RFC 9110 §5.6.7) and the autoindex date column, in UTC, without Foundation.
enum HTTPDate {
    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// `Sun, 06 Nov 1994 08:49:37 GMT`
    static func format(_ seconds: Int) -> String {
        let tm = Self.utc(seconds)
        let day = Self.days[Int(tm.tm_wday) % 7]
        let month = Self.months[Int(tm.tm_mon) % 12]
        return
            "\(day), \(pad2(tm.tm_mday)) \(month) \(1900 + Int(tm.tm_year)) \(pad2(tm.tm_hour)):\(pad2(tm.tm_min)):\(pad2(tm.tm_sec)) GMT"
    }

    /// `1994-11-06 08:49`, the Apache autoindex column.
    static func formatListing(_ seconds: Int) -> String {
        let tm = Self.utc(seconds)
        return
            "\(1900 + Int(tm.tm_year))-\(pad2(tm.tm_mon + 1))-\(pad2(tm.tm_mday)) \(pad2(tm.tm_hour)):\(pad2(tm.tm_min))"
    }

    /// Parses an IMF-fixdate; the obsolete RFC 850 and asctime forms are not accepted (nil: ignore the header).
    static func parse(_ text: String) -> Int? {
        let parts = text.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 6, parts[0].hasSuffix(","), parts[5] == "GMT" else { return nil }
        guard let day = Int(parts[1]), let monthIndex = Self.months.firstIndex(of: String(parts[2])),
            let year = Int(parts[3])
        else { return nil }
        let clock = parts[4].split(separator: ":")
        guard clock.count == 3, let h = Int(clock[0]), let m = Int(clock[1]), let s = Int(clock[2]) else { return nil }
        guard (1...31).contains(day), (1970...9999).contains(year), (0...23).contains(h), (0...59).contains(m),
            (0...60).contains(s)
        else { return nil }
        var tm = Glibc.tm()
        tm.tm_year = Int32(year - 1900)
        tm.tm_mon = Int32(monthIndex)
        tm.tm_mday = Int32(day)
        tm.tm_hour = Int32(h)
        tm.tm_min = Int32(m)
        tm.tm_sec = Int32(s)
        let t = timegm(&tm)
        return t == -1 ? nil : Int(t)
    }

    private static func utc(_ seconds: Int) -> Glibc.tm {
        var t = time_t(seconds)
        var tm = Glibc.tm()
        _ = gmtime_r(&t, &tm)
        return tm
    }

    private static func pad2(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
}
