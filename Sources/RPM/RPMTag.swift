/// Header tag numbers (rpm's `rpmTag` / `rpmSigTag`). Main-header tags unless noted.
public enum RPMTag {
    // MARK: Regions
    /// Region tag of the signature header.
    public static let headerSignatures: UInt32 = 62
    /// Region tag of the main header.
    public static let headerImmutable: UInt32 = 63
    /// Locale table for I18NSTRING values.
    public static let headerI18NTable: UInt32 = 100

    // MARK: Package identity and descriptive tags
    public static let name: UInt32 = 1000
    public static let version: UInt32 = 1001
    public static let release: UInt32 = 1002
    public static let epoch: UInt32 = 1003
    public static let summary: UInt32 = 1004
    public static let description: UInt32 = 1005
    public static let buildTime: UInt32 = 1006
    public static let buildHost: UInt32 = 1007
    public static let size: UInt32 = 1009
    public static let vendor: UInt32 = 1011
    public static let license: UInt32 = 1014
    public static let packager: UInt32 = 1015
    public static let group: UInt32 = 1016
    public static let url: UInt32 = 1020
    public static let os: UInt32 = 1021
    public static let arch: UInt32 = 1022
    public static let oldFilenames: UInt32 = 1027
    public static let fileModes: UInt32 = 1030
    public static let fileFlags: UInt32 = 1037
    public static let sourceRPM: UInt32 = 1044
    public static let provideName: UInt32 = 1047
    public static let requireFlags: UInt32 = 1048
    public static let requireName: UInt32 = 1049
    public static let requireVersion: UInt32 = 1050
    public static let conflictFlags: UInt32 = 1053
    public static let conflictName: UInt32 = 1054
    public static let conflictVersion: UInt32 = 1055
    public static let changelogTime: UInt32 = 1080
    public static let changelogName: UInt32 = 1081
    public static let changelogText: UInt32 = 1082
    public static let obsoleteName: UInt32 = 1090
    public static let sourcePackage: UInt32 = 1106
    public static let provideFlags: UInt32 = 1112
    public static let provideVersion: UInt32 = 1113
    public static let obsoleteFlags: UInt32 = 1114
    public static let obsoleteVersion: UInt32 = 1115
    public static let dirIndexes: UInt32 = 1116
    public static let baseNames: UInt32 = 1117
    public static let dirNames: UInt32 = 1118
    public static let payloadFormat: UInt32 = 1124
    public static let payloadCompressor: UInt32 = 1125
    public static let longSize: UInt32 = 5009
    public static let payloadDigest: UInt32 = 5092
    public static let payloadDigestAlgo: UInt32 = 5093

    // MARK: Signature header tags (rpmSigTag)
    public static let sigDSAHeader: UInt32 = 267
    public static let sigRSAHeader: UInt32 = 268
    public static let sigSHA1Header: UInt32 = 269
    public static let sigLongSize: UInt32 = 270
    public static let sigLongArchiveSize: UInt32 = 271
    public static let sigSHA256Header: UInt32 = 273
    public static let sigSize: UInt32 = 1000
    public static let sigPGP: UInt32 = 1002
    public static let sigMD5: UInt32 = 1004
    public static let sigGPG: UInt32 = 1005
    public static let sigPayloadSize: UInt32 = 1007
    public static let sigReservedSpace: UInt32 = 1008
}
