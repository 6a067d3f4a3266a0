// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Node builtins and I/O libraries are off limits to deterministic code (workflows, domain, schemas). */
const deterministicFence = {
  patterns: [
    { group: ['node:*'], message: 'Deterministic code may not import Node builtins: do I/O in an activity.' },
    {
      group: [
        '../activities/*',
        '../activities',
        '../devserver/*',
        '@temporalio/client',
        '@temporalio/worker',
      ],
      allowTypeImports: true,
      message: 'Deterministic code may import only types from activities; no clients or workers.',
    },
  ],
  paths: ['fs', 'path', 'os', 'child_process', 'http', 'https', 'net', 'crypto', 'process'].map((name) => ({
    name,
    message: 'Deterministic code may not import Node builtins: do I/O in an activity.',
  })),
};

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'coverage/**', 'bin/**', 'scratch/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['src/workflows/**/*.ts', 'src/domain/**/*.ts', 'src/schemas/**/*.ts', 'src/errors.ts'],
    rules: { 'no-restricted-imports': ['error', deterministicFence] },
  },
  {
    // The dev server is its own world: it must not depend on the application code.
    files: ['src/devserver/**/*.ts'],
    rules: {
      // Wire values are plain numbers from the protobuf decoder; comparing them with the generated enums is
      // exactly what the protocol means.
      '@typescript-eslint/no-unsafe-enum-comparison': 'off',
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['../workflows/*', '../activities/*', '../domain/*', '../config/*'],
              message: 'src/devserver imports nothing from the application.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['eslint.config.mjs'],
    extends: [tseslint.configs.disableTypeChecked],
  },
);
