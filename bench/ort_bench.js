// ort_bench.js MODEL.onnx BATCH REPEATS SECONDS - inference images/s of an ONNX model exported by
// loom in onnxruntime-node (tests/onnx/node_modules), 2 intra-op threads, all graph
// optimizations: random pixels 0..255 as float32 (BATCH, 1, 28, 28), 8 distinct batches cycled
// (as `loom bench`), one warm-up repeat, then REPEATS repeats of about SECONDS each; prints the
// median img/s. Used by bench/ort.sh.
'use strict';
const path = require('path');
const ort = require(path.join(__dirname, '..', 'tests', 'onnx', 'node_modules', 'onnxruntime-node'));

async function main() {
    const [modelPath, bText, rText, sText] = process.argv.slice(2);
    const B = parseInt(bText, 10), repeats = parseInt(rText, 10), seconds = parseFloat(sText);
    const session = await ort.InferenceSession.create(modelPath, {
        intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'all',
    });
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    const feeds = [];
    for (let k = 0; k < 8; k++) {
        const x = new Float32Array(B * 784);
        for (let i = 0; i < x.length; i++) x[i] = rand();
        feeds.push({image: new ort.Tensor('float32', x, [B, 1, 28, 28])});
    }
    const now = () => Number(process.hrtime.bigint()) / 1e9;
    let t0 = now();
    for (let s = 0; s < 2; s++) await session.run(feeds[s]);
    const steps = Math.max(3, Math.ceil(seconds / Math.max((now() - t0) / 2, 1e-7)));
    const ips = [];
    for (let rep = -1; rep < repeats; rep++) {
        t0 = now();
        for (let s = 0; s < steps; s++) await session.run(feeds[s % 8]);
        if (rep >= 0) ips.push(steps * B / (now() - t0));
    }
    ips.sort((a, b) => a - b);
    const n = ips.length;
    console.log((n % 2 ? ips[(n - 1) / 2] : (ips[n / 2 - 1] + ips[n / 2]) / 2).toFixed(0));
}

main().catch((e) => {
    console.error(`ort_bench.js: ${e.message}`);
    process.exit(1);
});
