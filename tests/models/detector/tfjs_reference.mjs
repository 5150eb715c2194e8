// The reference runtime for the TFJS executor's equivalence test: @tensorflow/tfjs with the WASM
// backend in Node (nothing fetched at run time: the .wasm ships in the npm package).
// usage: node tfjs_reference.mjs MODEL_JSON INPUT_F32 SHAPE_CSV OUT_DIR
// Reads a float32 little-endian input of the given shape, writes OUT_DIR/<output name>.f32 and
// OUT_DIR/outputs.json ({name: shape}).
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(path.join(process.cwd(), 'package.json'));
const tf = require('@tensorflow/tfjs');
require('@tensorflow/tfjs-backend-wasm');

const [modelJson, inputPath, shapeCsv, outDir] = process.argv.slice(2);
await tf.setBackend('wasm');
await tf.ready();
const spec = JSON.parse(fs.readFileSync(modelJson, 'utf8'));
const dir = path.dirname(modelJson);
const specs = spec.weightsManifest.flatMap((g) => g.weights);
const buffers = spec.weightsManifest.flatMap((g) => g.paths.map((p) => fs.readFileSync(path.join(dir, p))));
const all = Buffer.concat(buffers);
const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
const model = await tf.loadGraphModel(tf.io.fromMemory({
  modelTopology: spec.modelTopology, weightSpecs: specs, weightData,
  format: spec.format, generatedBy: spec.generatedBy, convertedBy: spec.convertedBy, signature: spec.signature,
}));
const shape = shapeCsv.split(',').map(Number);
const raw = fs.readFileSync(inputPath);
const x = tf.tensor(new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4), shape, 'float32');
const names = model.outputs.map((o) => o.name);
const outs = await model.executeAsync(x, names);
const meta = {};
for (let i = 0; i < names.length; i++) {
  const t = Array.isArray(outs) ? outs[i] : outs;
  const data = await t.data();
  const base = names[i].split(':')[0];
  fs.writeFileSync(path.join(outDir, base + '.f32'), Buffer.from(new Float32Array(data).buffer));
  meta[base] = t.shape;
}
fs.writeFileSync(path.join(outDir, 'outputs.json'), JSON.stringify(meta));
console.log(`backend ${tf.getBackend()}, ${names.length} outputs`);
