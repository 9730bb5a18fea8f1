extension KeyedDecodingContainer {
    /// The value under `key`, or `defaultValue` when the key is absent or `null`. A present value of the wrong
    /// type is still an error, one that names the field:
    ///
    ///     self.poolSize = try c.decodeIfPresent(forKey: .poolSize, default: self.poolSize)
    ///
    /// (Inside `init(from:)`, `self.poolSize` already holds the default written at the property's declaration.)
    public func decodeIfPresent<T: Decodable>(
        _ type: T.Type = T.self,
        forKey key: Key,
        default defaultValue: @autoclosure () -> T
    ) throws -> T {
        do {
            return try self.decodeIfPresent(type, forKey: key) ?? defaultValue()
        } catch let error as DecodingError {
            throw error
        } catch {
            // Foundation's JSONDecoder throws an internal error without a coding path for a number that does not
            // fit its type (3.5 or 1e30 for an Int); its text quotes the number, so it is replaced, not wrapped.
            let context = DecodingError.Context(
                codingPath: self.codingPath + [key],
                debugDescription: DecodingErrorText.numberDoesNotFit
            )
            if T.self is any Numeric.Type {
                throw DecodingError.typeMismatch(type, context)
            }
            throw DecodingError.dataCorrupted(context)
        }
    }
}
