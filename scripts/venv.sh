# Sourced by the test scripts: pinned PyPI tools in their own virtual environments.

# venv_install VENV REQUIREMENTS WHAT: installs the pinned REQUIREMENTS into the virtual
# environment VENV, unless it already holds exactly them (a changed file reinstalls).
venv_install() {
    local venv=$1 requirements=$2 what=$3
    if ! cmp -s "$requirements" "$venv/.installed-requirements.txt"; then
        echo "installing $what into $venv (pip)"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
        cp "$requirements" "$venv/.installed-requirements.txt"
    fi
}
