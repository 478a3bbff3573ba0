// Builds src/p.js into <outdir>/p.js, prints its raw, gzip and brotli sizes and fails when
// gzip is over budget.
//
//   node build.mjs                                   the default build, every feature: dist/p.js
//   node build.mjs --outdir=/tmp/p                   the same, elsewhere (the tests compare it with dist/)
//   node build.mjs --outdir=/tmp/p --without=spa,engagement
//
// A trimmed build needs its own --outdir: dist/p.js is what the collector serves.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";
import { build } from "esbuild";
import { minify } from "terser";

const FEATURES = ["spa", "events", "tagged", "outbound", "downloads", "engagement", "visitor"];
const BUDGET_GZIP_BYTES = 1024;

const { values } = parseArgs({
  options: {
    outdir: { type: "string" },
    without: { type: "string", default: "" },
    budget: { type: "string", default: String(BUDGET_GZIP_BYTES) },
  },
});
const without = values.without ? values.without.split(",") : [];
const unknown = without.filter((name) => !FEATURES.includes(name));
if (unknown.length) fail(`unknown feature ${unknown.join(", ")}; features: ${FEATURES.join(", ")}`);
if (without.length && !values.outdir) fail("a build --without features needs its own --outdir");
const outdir = values.outdir ?? new URL("dist", import.meta.url).pathname;

const result = await build({
  entryPoints: [new URL("src/p.js", import.meta.url).pathname],
  write: false,
  minify: true,
  target: "es2021",
  legalComments: "none",
  define: Object.fromEntries(FEATURES.map((name) => [`PULSE_${name.toUpperCase()}`, String(!without.includes(name))])),
});
// esbuild drops the features left out; terser then minifies harder than esbuild does (it reuses
// short names across scopes, which gzip rewards), and those ~20 bytes are what keep the resend
// of a refused beacon inside the budget.
const { code } = await minify(result.outputFiles[0].text, { ecma: 2021, compress: { passes: 3 }, mangle: true });

mkdirSync(outdir, { recursive: true });
const outfile = join(outdir, "p.js");
writeFileSync(outfile, code);

const gzip = gzipSync(code, { level: 9 }).length;
const brotli = brotliCompressSync(code, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length;
const budget = Number(values.budget);
console.log(`${outfile}  raw ${code.length} B  gzip ${gzip} B  brotli ${brotli} B  (budget: gzip <= ${budget} B)`);
if (gzip > budget) fail(`gzip size ${gzip} B is over the budget of ${budget} B`);

function fail(message) {
  console.error(`build.mjs: ${message}`);
  process.exit(1);
}
