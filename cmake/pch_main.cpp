// main() for the executable that carries flowlab's PCH for executables.
int main() { return 0; }
