/* exports no program function */
export const value = 1;
