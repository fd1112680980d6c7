// Config files: any text gives a Config or an error that names what is wrong, never a crash; and a
// Config that loads prints (`idlegate check`) to YAML that loads to the same Config.
import FuzzSupport
import IdlegateConfig

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let config: Config
    do {
        config = try Config.load(yaml: text)
    } catch {
        invariant(!error.description.isEmpty, "an error that says nothing")
        return 0
    }
    let printed = config.yaml(secrets: true)
    do {
        let again = try Config.load(yaml: printed)
        invariant(again == config, "printed config reads back differently:\n\(printed)")
    } catch {
        invariant(false, "printed config does not load (\(error)):\n\(printed)")
    }
    return 0
}
