/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: "<rootDir>/test/environment.js",
  roots: ["<rootDir>/test"],
  transform: { "^.+\\.ts$": ["ts-jest", { tsconfig: "tsconfig.json" }] },
  testTimeout: 120000,
};
