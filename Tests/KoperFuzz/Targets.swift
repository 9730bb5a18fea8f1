/// Every fuzz target, in the order bench/fuzz runs them.
public let allFuzzTargets: [any FuzzTarget] = [
    HTTPParserFuzzTarget(), MultipartFuzzTarget(), RPMReaderFuzzTarget(), JSONFuzzTarget(),
]
