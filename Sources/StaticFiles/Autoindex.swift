/// An Apache-style directory index page, the shape `wget -r` (copr-cli download-build) and people expect.
enum Autoindex {
    /// `urlPath` is the decoded path of the directory as requested, ending in `/` (for the title);
    /// `hasParent` adds the "Parent Directory" row. Entries are sorted here, by name (byte order).
    static func render(urlPath: String, hasParent: Bool, entries: [ListingEntry], truncated: Bool) -> String {
        let sorted = entries.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        let title = "Index of " + PathText.escapeHTML(urlPath)
        var html = """
            <!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">
            <html>
             <head>
              <title>\(title)</title>
             </head>
             <body>
            <h1>\(title)</h1>
              <table>
               <tr><th>Name</th><th>Last modified</th><th>Size</th></tr>
               <tr><th colspan="3"><hr></th></tr>

            """
        if hasParent {
            html +=
                "<tr><td><a href=\"../\">Parent Directory</a></td><td>&nbsp;</td><td align=\"right\">  - </td></tr>\n"
        }
        for entry in sorted {
            let suffix = entry.isDirectory ? "/" : ""
            let href = PathText.encodeSegment(entry.name) + suffix
            let label = PathText.escapeHTML(entry.name) + suffix
            let size = entry.isDirectory ? "  - " : Self.humanSize(entry.size)
            html += "<tr><td><a href=\"\(href)\">\(label)</a></td>"
            html += "<td align=\"right\">\(HTTPDate.formatListing(entry.modified))  </td>"
            html += "<td align=\"right\">\(size)</td></tr>\n"
        }
        if truncated {
            html += "<tr><td colspan=\"3\">(listing truncated)</td></tr>\n"
        }
        html += """
               <tr><th colspan="3"><hr></th></tr>
            </table>
            </body></html>

            """
        return html
    }

    /// Apache's `-h` style: `512`, `4.0K`, `12K`, `1.2M`, `3.4G`.
    static func humanSize(_ bytes: Int) -> String {
        if bytes < 1024 { return "\(bytes)" }
        let units = ["K", "M", "G", "T", "P"]
        var value = Double(bytes) / 1024
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        if value < 10 {
            let tenths = Int((value * 10).rounded())
            if tenths < 100 { return "\(tenths / 10).\(tenths % 10)\(units[unit])" }
        }
        return "\(Int(value.rounded()))\(units[unit])"
    }
}
