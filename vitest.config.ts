import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['__test__/**/*.test.ts'],
    // Installs (as root) or names the real peers the tests need before any suite runs.
    globalSetup: ['__test__/global-setup.ts'],
    // The native addon is loaded once per process; forks keep each test file in its own.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
})
