/// The Frontend's store (decision 0009): record types read from and written to the Koper database, and one
/// repository per aggregate that holds all of that aggregate's SQL.
public enum KoperStore {}
