import { defineConfig } from 'tsup'

export default defineConfig({
  entry: ['src-ts/index.ts', 'src-ts/testing.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  shims: true,
  clean: true,
  target: 'node20',
  outDir: 'dist',
  sourcemap: true,
})
