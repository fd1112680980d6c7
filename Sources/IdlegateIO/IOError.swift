import Glibc

/// A failed system call: which call, and the errno it left. Every socket error in idlegate is one of
/// these, so a log line always says what failed (`connect: Connection refused (111)`).
public struct IOError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let errno: Int32

    public init(_ call: String, errno: Int32 = Glibc.errno) {
        self.call = call
        self.errno = errno
    }

    public var description: String {
        "\(call): \(String(cString: strerror(errno))) (\(errno))"
    }
}
