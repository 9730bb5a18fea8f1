internal import RPM

/// Zero-copy access to header strings. `RPMHeader.rawStrings` copies every string; repodata generation reads
/// a hundred or more strings per package, so these views slice the (already validated) data store instead.
extension RPMHeader {
    /// The strings of a STRING, STRING_ARRAY or I18NSTRING entry as slices of the data store (without the
    /// NULs); nil when the tag is absent or has another type.
    func stringSlices(_ tag: UInt32) -> [ArraySlice<UInt8>]? {
        guard let entry = self.entry(tag) else { return nil }
        switch entry.type {
        case .string, .stringArray, .i18nstring:
            break
        default:
            return nil
        }
        let store = self.dataStore
        var result: [ArraySlice<UInt8>] = []
        result.reserveCapacity(entry.count)
        var position = entry.offset
        let end = store.count
        store.withUnsafeBufferPointer { buffer in
            while result.count < entry.count, position < end {
                var nul = position
                while nul < end, buffer[nul] != 0 {
                    nul += 1
                }
                result.append(store[position..<nul])
                position = nul + 1
            }
        }
        return result
    }

    /// rpm's `headerGetString`: the string of a STRING entry, or the first element (the C locale) of a
    /// STRING_ARRAY / I18NSTRING entry; nil when absent or not a string type.
    func firstStringSlice(_ tag: UInt32) -> ArraySlice<UInt8>? {
        guard let entry = self.entry(tag) else { return nil }
        switch entry.type {
        case .string, .stringArray, .i18nstring:
            break
        default:
            return nil
        }
        let store = self.dataStore
        let end = store.count
        var nul = entry.offset
        store.withUnsafeBufferPointer { buffer in
            while nul < end, buffer[nul] != 0 {
                nul += 1
            }
        }
        return store[entry.offset..<nul]
    }

    /// rpm's `headerGetNumber`/`rpmtdGetNumber` on the first element: any integer type, zero-extended.
    func firstNumber(_ tag: UInt32) -> UInt64? {
        self.uint64s(tag)?.first
    }
}

/// Header tags createrepo_c reads that `RPMTag` does not name.
enum RepodataTag {
    static let archiveSize: UInt32 = 1046
    static let longArchiveSize: UInt32 = 271
    static let recommendName: UInt32 = 5046
    static let recommendVersion: UInt32 = 5047
    static let recommendFlags: UInt32 = 5048
    static let suggestName: UInt32 = 5049
    static let suggestVersion: UInt32 = 5050
    static let suggestFlags: UInt32 = 5051
    static let supplementName: UInt32 = 5052
    static let supplementVersion: UInt32 = 5053
    static let supplementFlags: UInt32 = 5054
    static let enhanceName: UInt32 = 5055
    static let enhanceVersion: UInt32 = 5056
    static let enhanceFlags: UInt32 = 5057
    static let oldSuggestsName: UInt32 = 1156
    static let oldSuggestsVersion: UInt32 = 1157
    static let oldSuggestsFlags: UInt32 = 1158
    static let oldEnhancesName: UInt32 = 1159
    static let oldEnhancesVersion: UInt32 = 1160
    static let oldEnhancesFlags: UInt32 = 1161
}
