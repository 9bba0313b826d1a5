// Kept as the module the pool imports; the classifier lives in ./classify/.
export * from './classify/index.js';
