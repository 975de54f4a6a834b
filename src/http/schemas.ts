/** JSON-schema fragments shared by routes. */
export const shortString = { type: 'string', minLength: 1, maxLength: 255 } as const;
export const nameList = { type: 'array', maxItems: 50, items: { type: 'string', maxLength: 63 } } as const;
