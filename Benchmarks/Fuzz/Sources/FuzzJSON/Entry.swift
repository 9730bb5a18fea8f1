// libFuzzer entry point (built only by bench/fuzz with -sanitize=fuzzer,address): one input, every invariant of
// JSONFuzzTarget; a broken invariant is a crash, which libFuzzer reports and saves.
import KoperFuzz

private let target = JSONFuzzTarget()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    if case .violation(let message) = target.check(input) {
        fatalError("\(target.name): \(message)")
    }
    return 0
}
