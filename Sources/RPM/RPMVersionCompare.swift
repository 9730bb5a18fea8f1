/// rpm 4.18's `rpmvercmp` on raw bytes: -1 if `a` is older than `b`, 0 if equal, 1 if newer. The one
/// implementation in Koper: Repodata orders dependencies with it, CoprModel's `RPMVersion` compares versions
/// and chroot names with it.
///
/// Both byte strings are split into runs of ASCII digits and runs of ASCII letters (rpm's `risdigit`/`risalpha`;
/// every other byte only separates). Runs compare pairwise: numbers numerically (leading zeros ignored), letters
/// by byte value, and a number is newer than letters. `~` sorts before anything, even the end of the string
/// (`1.0~rc1` < `1.0`); `^` sorts after the end of the string but before anything else
/// (`1.0` < `1.0^git1` < `1.0.1`). When one string runs out, the longer one is newer.
public func rpmVersionCompare<A: Collection<UInt8>, B: Collection<UInt8>>(_ a: A, _ b: B) -> Int {
    if a.elementsEqual(b) { return 0 }
    let one = Array(a)
    let two = Array(b)
    var i = 0
    var j = 0
    func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
    func isAlpha(_ c: UInt8) -> Bool { (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) }
    func isAlnum(_ c: UInt8) -> Bool { isDigit(c) || isAlpha(c) }
    let tilde = UInt8(ascii: "~")
    let caret = UInt8(ascii: "^")
    while i < one.count || j < two.count {
        while i < one.count, !isAlnum(one[i]), one[i] != tilde, one[i] != caret { i += 1 }
        while j < two.count, !isAlnum(two[j]), two[j] != tilde, two[j] != caret { j += 1 }
        let c1: UInt8 = i < one.count ? one[i] : 0
        let c2: UInt8 = j < two.count ? two[j] : 0
        if c1 == tilde || c2 == tilde {
            if c1 != tilde { return 1 }
            if c2 != tilde { return -1 }
            i += 1
            j += 1
            continue
        }
        if c1 == caret || c2 == caret {
            if c1 == 0 { return -1 }
            if c2 == 0 { return 1 }
            if c1 != caret { return 1 }
            if c2 != caret { return -1 }
            i += 1
            j += 1
            continue
        }
        if c1 == 0 || c2 == 0 { break }
        var end1 = i
        var end2 = j
        let isNumber = isDigit(one[i])
        if isNumber {
            while end1 < one.count, isDigit(one[end1]) { end1 += 1 }
            while end2 < two.count, isDigit(two[end2]) { end2 += 1 }
        } else {
            while end1 < one.count, isAlpha(one[end1]) { end1 += 1 }
            while end2 < two.count, isAlpha(two[end2]) { end2 += 1 }
        }
        if end1 == i { return -1 }
        if end2 == j { return isNumber ? 1 : -1 }
        var s1 = i
        var s2 = j
        if isNumber {
            while s1 < end1, one[s1] == 0x30 { s1 += 1 }
            while s2 < end2, two[s2] == 0x30 { s2 += 1 }
            let length1 = end1 - s1
            let length2 = end2 - s2
            if length1 > length2 { return 1 }
            if length2 > length1 { return -1 }
        }
        // strcmp of the two segments
        var k1 = s1
        var k2 = s2
        while k1 < end1, k2 < end2 {
            if one[k1] != two[k2] { return one[k1] < two[k2] ? -1 : 1 }
            k1 += 1
            k2 += 1
        }
        if k1 < end1 { return 1 }
        if k2 < end2 { return -1 }
        i = end1
        j = end2
    }
    if i >= one.count && j >= two.count { return 0 }
    return i >= one.count ? -1 : 1
}
