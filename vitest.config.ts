import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['__test__/**/*.test.ts'],
    // The native addon is loaded once per process; forks keep each test file in its own.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
})
