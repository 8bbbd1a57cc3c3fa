import { defineConfig } from 'tsup'

export default defineConfig({
  entry: ['src-ts/index.ts', 'src-ts/testing.ts'],
  format: ['esm', 'cjs'],
  // `@internal` members (the addon's handles, constructors that take them) stay out of the typings.
  dts: { compilerOptions: { stripInternal: true } },
  shims: true,
  clean: true,
  target: 'node20',
  outDir: 'dist',
  sourcemap: true,
})
