// Reads the .npy files of GET /api/results/{id}/maps/{name}: little-endian float32/float64, C order.

export function parseNpy(buffer) {
  const bytes = new Uint8Array(buffer);
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (bytes.length < 10 || magic.some((b, i) => bytes[i] !== b)) throw new Error("not a .npy file");
  const view = new DataView(buffer);
  const major = bytes[6];
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder("latin1").decode(bytes.subarray(start, start + headerLength));
  const descr = /'descr':\s*'([^']+)'/.exec(header);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !shapeText) throw new Error("unreadable .npy header");
  if (/'fortran_order':\s*True/.test(header)) throw new Error("Fortran-ordered .npy is not supported");
  const shape = shapeText[1].split(",").map((s) => s.trim()).filter((s) => s.length).map(Number);
  const body = buffer.slice(start + headerLength);
  let data;
  if (descr[1] === "<f4") data = new Float32Array(body);
  else if (descr[1] === "<f8") data = Float32Array.from(new Float64Array(body));
  else throw new Error(`unsupported dtype ${descr[1]}`);
  return { shape, data };
}
