/* main.c - argument parsing and dispatch to blurd's commands; nothing else. */
#include <stdio.h>

int main(void)
{
    fprintf(stderr, "blurd: not built yet\n");
    return 2;
}
