// run_ort.js MODEL.onnx IMAGES_IDX N OUT.bin - runs an exported loom model in onnxruntime-node on
// the first N images of an IDX image file (plain or gzip), fed as float32 (N, 1, H, W) raw
// pixels 0..255 as the graph's "image" input, and writes its "probabilities" (N, classes) as raw
// little-endian float32 to OUT.bin. Prints one line: the output shape. Used by tests/data/onnx.sh.
'use strict';
const fs = require('fs');
const zlib = require('zlib');
const path = require('path');
const ort = require(path.join(__dirname, 'node_modules', 'onnxruntime-node'));

async function main() {
    const [modelPath, idxPath, nText, outPath] = process.argv.slice(2);
    let raw = fs.readFileSync(idxPath);
    if (raw[0] === 0x1f && raw[1] === 0x8b) raw = zlib.gunzipSync(raw);
    if (raw.readUInt32BE(0) !== 0x00000803) throw new Error(`${idxPath}: not an IDX image file`);
    const total = raw.readUInt32BE(4), H = raw.readUInt32BE(8), W = raw.readUInt32BE(12);
    const n = Math.min(parseInt(nText, 10), total);
    const x = new Float32Array(n * H * W);
    for (let i = 0; i < x.length; i++) x[i] = raw[16 + i];
    const session = await ort.InferenceSession.create(modelPath, {
        intraOpNumThreads: 2, interOpNumThreads: 1,
    });
    const out = await session.run({image: new ort.Tensor('float32', x, [n, 1, H, W])});
    const p = out.probabilities;
    fs.writeFileSync(outPath, Buffer.from(p.data.buffer, p.data.byteOffset, p.data.byteLength));
    console.log(`probabilities ${p.dims.join('x')}`);
}

main().catch((e) => {
    console.error(`run_ort.js: ${e.message}`);
    process.exit(1);
});
