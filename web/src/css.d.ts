// CSS imports are bundled by esbuild into web/dist/app.css.
declare module '*.css'
